// Numbered, forward-only schema migrations. The version lives in PRAGMA user_version.
// A migration is never edited once released: a change is a new entry at the end.
import type { Database } from 'better-sqlite3';

export interface Migration {
  version: number;
  description: string;
  up(db: Database): void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'models, datasets, runs, tickets, masks, weights, keys, claims, verifications, jobs',
    up(db) {
      db.exec(`
        CREATE TABLE models (
          id            TEXT PRIMARY KEY,
          architecture  TEXT NOT NULL,
          source        TEXT NOT NULL CHECK (source IN ('zoo', 'file')),
          source_digest TEXT,
          spec_json     TEXT NOT NULL,
          created_at    TEXT NOT NULL
        );

        CREATE TABLE datasets (
          id          TEXT PRIMARY KEY,
          name        TEXT NOT NULL,
          source      TEXT NOT NULL,
          digest      TEXT NOT NULL,
          spec_json   TEXT NOT NULL,
          created_at  TEXT NOT NULL
        );
        CREATE INDEX datasets_name ON datasets (name);

        -- Content-addressed weight checkpoints (initial, rewind point, trained), stored once per digest.
        CREATE TABLE weights (
          digest      TEXT PRIMARY KEY,
          encoding    TEXT NOT NULL,
          byte_length INTEGER NOT NULL,
          blob        BLOB NOT NULL,
          created_at  TEXT NOT NULL
        );

        CREATE TABLE runs (
          id              TEXT PRIMARY KEY,
          method          TEXT NOT NULL,
          model_id        TEXT NOT NULL REFERENCES models (id),
          dataset_id      TEXT NOT NULL REFERENCES datasets (id),
          run_key         TEXT NOT NULL,
          seed            INTEGER NOT NULL,
          hparams_json    TEXT NOT NULL,
          backend_json    TEXT NOT NULL,
          versions_json   TEXT NOT NULL,
          status          TEXT NOT NULL CHECK (status IN ('running', 'completed', 'cancelled', 'failed', 'interrupted')),
          error           TEXT,
          init_weights    TEXT REFERENCES weights (digest),
          rewind_weights  TEXT REFERENCES weights (digest),
          pid             INTEGER,
          created_at      TEXT NOT NULL,
          finished_at     TEXT
        );
        CREATE INDEX runs_model ON runs (model_id);
        CREATE INDEX runs_key ON runs (run_key);

        CREATE TABLE tickets (
          id                   TEXT PRIMARY KEY,
          run_id               TEXT NOT NULL REFERENCES runs (id),
          parent_id            TEXT REFERENCES tickets (id),
          level                INTEGER NOT NULL,
          method               TEXT NOT NULL,
          role                 TEXT NOT NULL CHECK (role IN ('ticket', 'control')),
          kept                 INTEGER NOT NULL,
          total                INTEGER NOT NULL,
          sparsity             REAL NOT NULL,
          test_accuracy        REAL,
          early_stop_iteration INTEGER,
          metrics_json         TEXT NOT NULL,
          curve_json           TEXT NOT NULL,
          start_weights        TEXT REFERENCES weights (digest),
          final_weights        TEXT REFERENCES weights (digest),
          created_at           TEXT NOT NULL
        );
        CREATE INDEX tickets_run ON tickets (run_id, level);
        CREATE INDEX tickets_parent ON tickets (parent_id);

        CREATE TABLE masks (
          ticket_id  TEXT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
          tensor     TEXT NOT NULL,
          position   INTEGER NOT NULL,
          shape_json TEXT NOT NULL,
          kept       INTEGER NOT NULL,
          total      INTEGER NOT NULL,
          blob       BLOB NOT NULL,
          PRIMARY KEY (ticket_id, tensor)
        );

        -- Public keys only: private keys live in a 0600 file, never in a row a bundle could export.
        CREATE TABLE keys (
          fingerprint     TEXT PRIMARY KEY,
          algorithm       TEXT NOT NULL,
          public_key_pem  TEXT NOT NULL,
          label           TEXT,
          own             INTEGER NOT NULL DEFAULT 0,
          created_at      TEXT NOT NULL
        );

        CREATE TABLE claims (
          id               TEXT PRIMARY KEY,
          ticket_id        TEXT NOT NULL REFERENCES tickets (id),
          kind             TEXT NOT NULL,
          key_fingerprint  TEXT REFERENCES keys (fingerprint),
          commitment       TEXT NOT NULL,
          params_json      TEXT NOT NULL,
          created_at       TEXT NOT NULL
        );
        CREATE INDEX claims_ticket ON claims (ticket_id);

        CREATE TABLE verifications (
          id             TEXT PRIMARY KEY,
          claim_id       TEXT REFERENCES claims (id),
          subject        TEXT NOT NULL,
          verdict        TEXT NOT NULL,
          score          REAL,
          threshold      REAL,
          p_value        REAL,
          evidence_json  TEXT NOT NULL,
          created_at     TEXT NOT NULL
        );

        CREATE TABLE jobs (
          id             TEXT PRIMARY KEY,
          kind           TEXT NOT NULL,
          state          TEXT NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
          params_json    TEXT NOT NULL,
          progress_json  TEXT,
          error          TEXT,
          run_id         TEXT REFERENCES runs (id),
          created_at     TEXT NOT NULL,
          updated_at     TEXT NOT NULL
        );
      `);
    },
  },
  {
    version: 2,
    description: 'keys.trusted: the public keys whose signed bundles this lab imports',
    up(db) {
      // Only the owner's own key was trusted before bundles existed; keys named in claims are not signers.
      db.exec(`
        ALTER TABLE keys ADD COLUMN trusted INTEGER NOT NULL DEFAULT 0;
        UPDATE keys SET trusted = 1 WHERE own = 1;
      `);
    },
  },
  {
    version: 3,
    description: 'jobs.pid and jobs.cancel_requested: which process runs a job, and a cancel asked for from another one',
    up(db) {
      db.exec(`
        ALTER TABLE jobs ADD COLUMN pid INTEGER;
        ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX jobs_state ON jobs (state);
      `);
    },
  },
  {
    version: 4,
    description: "jobs.result_json: a completed job's answer (a search's summary, an attack's table), for whoever looks later",
    up(db) {
      db.exec('ALTER TABLE jobs ADD COLUMN result_json TEXT');
    },
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
