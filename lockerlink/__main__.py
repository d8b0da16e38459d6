from lockerlink.cli import main

main()
