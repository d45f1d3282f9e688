"""The join: which pod and tenant holds each device, from the sources of one collection."""
