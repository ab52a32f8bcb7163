from ironspire.cli import main

main()
