from tokengine.cli import main

main()
