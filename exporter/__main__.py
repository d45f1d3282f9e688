"""`python -m exporter` runs the same entry point as `gpuwork-exporter`."""

from exporter.cli import main

raise SystemExit(main())
