from ironspire.cli.app import main

main()
