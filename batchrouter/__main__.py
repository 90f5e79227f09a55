from batchrouter.cli import main

main()
