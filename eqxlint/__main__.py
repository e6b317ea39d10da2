"""`python -m eqxlint` is `eqxlint`."""

from eqxlint.cli import main

if __name__ == "__main__":
    main()
