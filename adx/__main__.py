from adx.cli import main

raise SystemExit(main())
