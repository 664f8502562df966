from mumur.cli import main

main()
