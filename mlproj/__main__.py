from mlproj.console import main

main()
