from wizard.main import main

raise SystemExit(main())
