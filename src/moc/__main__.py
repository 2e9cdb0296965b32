from moc.cli.main import main

main()
