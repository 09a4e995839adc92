from lifelog.cli import main

main()
