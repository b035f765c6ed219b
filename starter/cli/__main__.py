"""`python -m starter.cli`: the `nurture` command line."""

from starter.cli.app import main

main()
