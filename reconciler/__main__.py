from reconciler.cli import main

if __name__ == "__main__":  # `python -m reconciler`; importing this module runs nothing
    raise SystemExit(main())
