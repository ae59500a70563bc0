from likeness.cli.main import app

app(prog_name="likeness")
