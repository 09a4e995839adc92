from lifelog.fastpath import main

main()
