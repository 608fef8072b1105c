"""The platform's resources as the HTTP API reads and writes them:
assistants, threads and their state, runs, crons and their scheduler, and
run streams. Plain functions over a connection; the server validates
shapes, these enforce what only the database knows."""
