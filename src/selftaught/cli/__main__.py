"""`python -m selftaught.cli`: the same as the `selftaught` command."""

from selftaught.cli import main

main()
