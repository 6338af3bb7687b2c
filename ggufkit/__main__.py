from ggufkit.cli.app import main

main()
