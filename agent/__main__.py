from carbonscope.cli import main

main()
