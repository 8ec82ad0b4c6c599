using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.Lora.Hosting.Jobs;
using Microsoft.ML.Lora.Hosting.Running;

namespace Microsoft.ML.Lora.Hosting.Storage;

/// <summary>
/// The durable job table: <c>jobs.db</c> (SQLite, WAL journal) in the data directory with a <c>jobs</c>
/// table (one row per job, its state and progress) and an <c>events</c> table (every state change and
/// every training step, numbered per job). Each change is one transaction, so a killed process loses at
/// most the change it was making. One connection serialised by a lock: the writes are tiny and SQLite
/// takes one writer at a time anyway.
/// </summary>
internal sealed class JobStore : IDisposable
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            step INTEGER NOT NULL DEFAULT 0,
            total_steps INTEGER NOT NULL DEFAULT 0,
            loss REAL,
            error TEXT,
            request TEXT NOT NULL,
            model_dir TEXT NOT NULL,
            dataset_path TEXT NOT NULL,
            output_dir TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE IF NOT EXISTS events (
            job_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (job_id, seq));
        """;

    private const string JobColumns = "id, state, created_at, started_at, finished_at, step, total_steps, loss, error, request";

    private readonly SqliteConnection connection;
    private readonly JobEventHub hub;
    private readonly Lock gate = new();
    private readonly FileStream ownership;
    private SqliteTransaction? transaction;

    public JobStore(IOptions<LoraTrainingOptions> options, JobEventHub hub, ILogger<JobStore> logger)
    {
        this.hub = hub;
        var settings = options.Value;
        settings.Validate();
        Directory.CreateDirectory(settings.DataDirectory);
        DatabasePath = Path.GetFullPath(Path.Combine(settings.DataDirectory, "jobs.db"));
        ownership = ClaimDataDirectory(settings.DataDirectory);
        connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        connection.Open();
        Execute("PRAGMA journal_mode=WAL;");

        // WAL with synchronous=NORMAL: a committed change survives a killed process (the WAL file is
        // written before the commit returns); only a power cut may lose the last few, and then the job
        // resumes from its checkpoint anyway. FULL would fsync once per training step.
        Execute("PRAGMA synchronous=NORMAL;");
        Execute(Schema);
        if (Convert.ToInt64(Scalar("SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'attempts'"), System.Globalization.CultureInfo.InvariantCulture) == 0)
        {
            // A database from before attempts were counted.
            Execute("ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;");
        }

        logger.LogInformation("Job store {Path} opened ({Count} jobs)", DatabasePath, Count());
    }

    /// <summary>Absolute path of the database file.</summary>
    public string DatabasePath { get; }

    /// <summary>
    /// Stores a new queued job and its first state event; returns null (storing nothing) with the reason in
    /// <paramref name="conflict"/> when a job that has not finished already writes to the same output folder, or
    /// when the folder lies inside, or contains, the output of a job that has not finished or has succeeded (its
    /// adapter download would then carry the other job's files). Check and insert are one step under the lock.
    /// </summary>
    public JobRecord? Insert(string requestJson, JobPaths paths, out string? conflict)
    {
        string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        lock (gate)
        {
            conflict = OutputConflict(paths.OutputDirectory);
            if (conflict is not null)
            {
                return null;
            }

            // Taken inside the lock so that creation times follow the table's order.
            string now = Now();
            using var tx = Begin();
            NonQuery("INSERT INTO jobs (id, state, created_at, request, model_dir, dataset_path, output_dir) VALUES ($id, $state, $now, $request, $model, $dataset, $output)",
                ("$id", id), ("$state", JobState.Queued.ToWire()), ("$now", now), ("$request", requestJson),
                ("$model", paths.ModelDirectory), ("$dataset", paths.DatasetPath), ("$output", paths.OutputDirectory));
            var stateEvent = AppendEvent(id, JobEvent.StateType, StateData(JobState.Queued, null), now);
            tx.Commit();
            hub.Publish(id, stateEvent);
        }

        return Get(id)!;
    }

    /// <summary>The job, or null.</summary>
    public JobRecord? Get(string id)
    {
        lock (gate)
        {
            using var command = Command($"SELECT {JobColumns} FROM jobs WHERE id = $id", ("$id", id));
            using var reader = command.ExecuteReader();
            return reader.Read() ? ReadJob(reader) : null;
        }
    }

    /// <summary>Every job, newest first.</summary>
    public IReadOnlyList<JobRecord> List()
    {
        lock (gate)
        {
            using var command = Command($"SELECT {JobColumns} FROM jobs ORDER BY seq DESC");
            using var reader = command.ExecuteReader();
            var result = new List<JobRecord>();
            while (reader.Read())
            {
                result.Add(ReadJob(reader));
            }

            return result;
        }
    }

    /// <summary>The resolved paths of a job, or null.</summary>
    public JobPaths? GetPaths(string id)
    {
        lock (gate)
        {
            using var command = Command("SELECT model_dir, dataset_path, output_dir FROM jobs WHERE id = $id", ("$id", id));
            using var reader = command.ExecuteReader();
            return reader.Read() ? new JobPaths(reader.GetString(0), reader.GetString(1), reader.GetString(2)) : null;
        }
    }

    /// <summary>
    /// The next job to run that is not in <paramref name="active"/>: jobs left running by a previous process
    /// first (oldest start first), then queued jobs in submission order; null when there is none.
    /// </summary>
    public string? NextRunnable(IReadOnlyCollection<string> active)
    {
        lock (gate)
        {
            using var command = Command("SELECT id FROM jobs WHERE state IN ('running', 'queued') ORDER BY CASE state WHEN 'running' THEN 0 ELSE 1 END, started_at, seq");
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                string id = reader.GetString(0);
                if (!active.Contains(id))
                {
                    return id;
                }
            }

            return null;
        }
    }

    /// <summary>
    /// Moves the job from one of <paramref name="from"/> to <paramref name="to"/> and stores the state event;
    /// returns false (changing nothing) when the job is in another state.
    /// </summary>
    public bool TryTransition(string id, JobState[] from, JobState to, string? error = null)
    {
        string now = Now();
        lock (gate)
        {
            using var tx = Begin();
            string states = string.Join(", ", from.Select(s => $"'{s.ToWire()}'"));
            int changed = NonQuery($"""
                UPDATE jobs SET state = $to, error = $error,
                    started_at = CASE WHEN $to = 'running' THEN COALESCE(started_at, $now) ELSE started_at END,
                    finished_at = CASE WHEN $to IN ('succeeded', 'failed', 'cancelled') THEN $now ELSE finished_at END
                WHERE id = $id AND state IN ({states})
                """, ("$to", to.ToWire()), ("$error", error), ("$now", now), ("$id", id));
            if (changed == 0)
            {
                return false;
            }

            var stateEvent = AppendEvent(id, JobEvent.StateType, StateData(to, error), now);
            tx.Commit();
            hub.Publish(id, stateEvent);
            return true;
        }
    }

    /// <summary>
    /// Counts one more start of the job's run and returns the count: starts that did not end (the process died
    /// while the job ran) add up, so a job that crashes the service can be given up on.
    /// </summary>
    public int BeginAttempt(string id)
    {
        lock (gate)
        {
            ThrowIfFull();
            return Convert.ToInt32(Scalar("UPDATE jobs SET attempts = attempts + 1 WHERE id = $id RETURNING attempts", ("$id", id)), System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>The run ended in an orderly way (finished, failed, cancelled or stopped with the host): it was no crash.</summary>
    public void EndAttempt(string id)
    {
        lock (gate)
        {
            NonQuery("UPDATE jobs SET attempts = 0 WHERE id = $id", ("$id", id));
        }
    }

    /// <summary>Records a finished optimizer step: the job's progress and a <c>step</c> event with <paramref name="data"/>.</summary>
    public void RecordStep(string id, int step, int totalSteps, double loss, string data)
    {
        string now = Now();
        lock (gate)
        {
            using var tx = Begin();
            NonQuery("UPDATE jobs SET step = $step, total_steps = $total, loss = $loss WHERE id = $id",
                ("$step", step), ("$total", totalSteps), ("$loss", double.IsFinite(loss) ? loss : null), ("$id", id));
            var stepEvent = AppendEvent(id, JobEvent.StepType, data, now);
            tx.Commit();
            hub.Publish(id, stepEvent);
        }
    }

    /// <summary>Stored events of the job with a sequence number above <paramref name="after"/>, in order.</summary>
    public IReadOnlyList<JobEvent> Events(string id, long after = 0)
    {
        lock (gate)
        {
            using var command = Command("SELECT seq, type, data FROM events WHERE job_id = $id AND seq > $after ORDER BY seq", ("$id", id), ("$after", after));
            using var reader = command.ExecuteReader();
            var result = new List<JobEvent>();
            while (reader.Read())
            {
                result.Add(new JobEvent(reader.GetInt64(0), reader.GetString(1), reader.GetString(2)));
            }

            return result;
        }
    }

    /// <summary>The JSON of a <c>state</c> event.</summary>
    public static string StateData(JobState state, string? error) =>
        JsonSerializer.Serialize(new { state = state.ToWire(), error });

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (gate)
        {
            connection.Dispose();
            ownership.Dispose();
        }
    }

    // The HResult .NET gives a file another process holds locked: ERROR_SHARING_VIOLATION on Windows, the raw
    // errno of the refused flock (EWOULDBLOCK) on Unix.
    private const int SharingViolation = unchecked((int)0x80070020);
    private const int WouldBlockLinux = 11;
    private const int WouldBlockMac = 35;

    // Two services on one data directory would both run its jobs: the first holds an exclusive lock on
    // service.lock (released by the OS when the process dies, even by a kill), the second is refused.
    private static FileStream ClaimDataDirectory(string dataDirectory)
    {
        string path = Path.GetFullPath(Path.Combine(dataDirectory, "service.lock"));
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e.HResult is SharingViolation or WouldBlockLinux or WouldBlockMac)
        {
            throw new InvalidOperationException($"data directory '{Path.GetDirectoryName(path)}' is in use by another training service ({path} is locked); give each service its own data directory", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot open {path}: {e.Message} — the data directory must be a writable folder", e);
        }
    }

    // Callers hold the lock.
    private string? OutputConflict(string outputDirectory)
    {
        using var command = Command("""
            SELECT id, state, output_dir FROM jobs
            WHERE (output_dir = $out AND state IN ('queued', 'running'))
               OR (state IN ('queued', 'running', 'succeeded')
                   AND (substr($out, 1, length(output_dir) + 1) = output_dir || $sep OR substr(output_dir, 1, length($out) + 1) = $out || $sep))
            LIMIT 1
            """, ("$out", outputDirectory), ("$sep", Path.DirectorySeparatorChar.ToString()));
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        string id = reader.GetString(0), state = reader.GetString(1), other = reader.GetString(2);
        return other == outputDirectory
            ? "is the output of a job that has not finished; choose a new name"
            : other.Length < outputDirectory.Length
                ? $"lies inside the output folder of job '{id}' ({state}); choose a name outside other jobs' outputs"
                : $"contains the output folder of job '{id}' ({state}); choose a name outside other jobs' outputs";
    }

    private int Count() => Convert.ToInt32(Scalar("SELECT COUNT(*) FROM jobs"), CultureInfo.InvariantCulture);

    private JobEvent AppendEvent(string id, string type, string data, string now)
    {
        long seq = Convert.ToInt64(Scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = $id", ("$id", id)), CultureInfo.InvariantCulture);
        NonQuery("INSERT INTO events (job_id, seq, type, data, created_at) VALUES ($id, $seq, $type, $data, $now)",
            ("$id", id), ("$seq", seq), ("$type", type), ("$data", data), ("$now", now));
        return new JobEvent(seq, type, data);
    }

    private void Execute(string sql) => NonQuery(sql);

    /// <summary>
    /// Fault injection for tests: while it returns true, every write fails as SQLite does when the disk is full
    /// (SQLITE_FULL); reads go on working, as they do on a full disk.
    /// </summary>
    internal Func<bool>? SimulateFullDisk { get; set; }

    private void ThrowIfFull()
    {
        if (SimulateFullDisk?.Invoke() == true)
        {
            throw new SqliteException("SQLite Error 13: 'database or disk is full'.", 13);
        }
    }

    private Transaction Begin()
    {
        ThrowIfFull();
        transaction = connection.BeginTransaction();
        return new Transaction(this);
    }

    private int NonQuery(string sql, params (string Name, object? Value)[] parameters)
    {
        ThrowIfFull();
        using var command = Command(sql, parameters);
        return command.ExecuteNonQuery();
    }

    private object? Scalar(string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(sql, parameters);
        return command.ExecuteScalar();
    }

    private SqliteCommand Command(string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }

    private static JobRecord ReadJob(SqliteDataReader r)
    {
        using var request = JsonDocument.Parse(r.GetString(9));
        return new JobRecord(
            r.GetString(0),
            JobStates.Parse(r.GetString(1)),
            ParseTime(r.GetString(2)),
            r.IsDBNull(3) ? null : ParseTime(r.GetString(3)),
            r.IsDBNull(4) ? null : ParseTime(r.GetString(4)),
            r.GetInt32(5),
            r.GetInt32(6),
            r.IsDBNull(7) ? null : r.GetDouble(7),
            r.IsDBNull(8) ? null : r.GetString(8),
            request.RootElement.Clone());
    }

    private static string Now() => DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture);

    /// <summary>The open transaction; commands created meanwhile join it.</summary>
    private readonly struct Transaction(JobStore store) : IDisposable
    {
        public void Commit() => store.transaction!.Commit();

        public void Dispose()
        {
            store.transaction?.Dispose();
            store.transaction = null;
        }
    }

    private static DateTimeOffset ParseTime(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
}
