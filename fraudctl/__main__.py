from fraudctl.cli import app

app()
