# PostgreSQL 15 with pg_cron, so `pgqueue sweep --install-cron` can schedule
# the sweep inside the database. The official image already has the PGDG apt
# repository configured, which carries postgresql-15-cron. Loading it needs
# shared_preload_libraries, set on the command line in docker-compose.yml.
FROM postgres:15

RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15-cron \
    && rm -rf /var/lib/apt/lists/*
