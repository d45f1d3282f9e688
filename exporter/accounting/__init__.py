"""The accounting: device time by state and holder, useful work, what devices cost."""
