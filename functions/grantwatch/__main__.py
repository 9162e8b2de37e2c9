from grantwatch.cli import main

main()
