from __future__ import annotations

from bench.autoscale.main import main

if __name__ == "__main__":
    main()
