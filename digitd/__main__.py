from digitd.cli import main

raise SystemExit(main())
