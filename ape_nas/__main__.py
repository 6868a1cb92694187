from ape_nas.cli import main

raise SystemExit(main())
