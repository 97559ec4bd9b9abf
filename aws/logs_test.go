package aws_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/aws"
	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

// restoreLog is green's log after a restore: recovery ends with the first
// "redo done at", then the engine upgrade restarts and logs a second one.
const restoreLog = `2024-01-05 10:00:00 UTC::@:[123]:LOG:  database system was interrupted; last known up at 2024-01-05 09:58:11 UTC
2024-01-05 10:00:01 UTC::@:[123]:LOG:  redo starts at 0/3000028
2024-01-05 10:00:01 UTC::@:[123]:LOG:  redo done at 0/3000148 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.00 s
2024-01-05 10:00:02 UTC::@:[123]:LOG:  checkpoint starting: end-of-recovery immediate wait
2024-01-05 10:05:00 UTC::@:[456]:LOG:  redo done at 0/5000A10 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.00 s
`

func TestFindRedoDoneReadsTheFirstLineAfterTheRestore(t *testing.T) {
	f := newFixture(t)
	f.srv.PageSize = 1    // DescribeDBLogFiles pages
	f.srv.LogPortion = 64 // many DownloadDBLogFilePortion portions
	f.srv.AddInstance(awstest.Instance{ID: "green", Class: "db.m6g.large"})
	restoreAt := time.Date(2024, 1, 5, 9, 59, 0, 0, time.UTC)
	// A stale file from before the restore (written before Since) holds an
	// older redo line that must not be taken.
	f.srv.AddLogFile("green", awstest.LogFile{Name: "error/postgresql.log.2024-01-04-23", LastWritten: restoreAt.Add(-time.Hour),
		Data: "2024-01-04 23:00:00 UTC::@:[9]:LOG:  redo done at 0/1000000 system usage: x\n"})
	// Names sort in the other order than times: the client must order by time.
	f.srv.AddLogFile("green", awstest.LogFile{Name: "error/postgresql.log.a-later", LastWritten: restoreAt.Add(2 * time.Hour),
		Data: "2024-01-05 12:00:00 UTC::@:[9]:LOG:  redo done at 0/9000000 system usage: x\n"})
	f.srv.AddLogFile("green", awstest.LogFile{Name: "error/postgresql.log.b-restore", LastWritten: restoreAt.Add(10 * time.Minute), Data: restoreLog})

	res, err := f.c.FindRedoDone(f.ctx, aws.FindRedoDoneParams{InstanceID: "green", Since: restoreAt})
	if err != nil {
		t.Fatalf("FindRedoDone: %v", err)
	}
	if !res.Found || res.LSN.String() != "0/3000148" || res.SeedLSN.String() != "0/3000149" || res.File != "error/postgresql.log.b-restore" || res.FilesRead != 1 {
		t.Fatalf("FindRedoDone = %+v", res)
	}
	if n := f.srv.Count("DescribeDBLogFiles"); n != 2 {
		t.Errorf("DescribeDBLogFiles called %d times, want 2 pages", n)
	}
	desc := f.srv.Calls("DescribeDBLogFiles")[0]
	wantParams(t, "describe logs", desc.Params, map[string]string{"DBInstanceIdentifier": "green", "FileLastWritten": "1704448740000"})
	downloads := f.srv.Calls("DownloadDBLogFilePortion")
	if len(downloads) < 3 || len(downloads) > (len(restoreLog)+63)/64 {
		t.Errorf("%d portions downloaded for a %d-byte file in 64-byte portions", len(downloads), len(restoreLog))
	}
	if downloads[0].Params["Marker"] != "0" || downloads[1].Params["Marker"] != "64" {
		t.Errorf("markers %q, %q", downloads[0].Params["Marker"], downloads[1].Params["Marker"])
	}
}

func TestDownloadLogFileWholeAndNotFound(t *testing.T) {
	f := newFixture(t)
	f.srv.LogPortion = 100
	f.srv.AddInstance(awstest.Instance{ID: "green", Class: "db.m6g.large"})
	data := strings.Repeat("é line of log\n", 50)
	f.srv.AddLogFile("green", awstest.LogFile{Name: "error/postgresql.log", LastWritten: time.Now(), Data: data})
	var buf bytes.Buffer
	res, err := f.c.DownloadLogFile(f.ctx, aws.DownloadLogParams{InstanceID: "green", File: "error/postgresql.log", W: &buf})
	if err != nil {
		t.Fatalf("DownloadLogFile: %v", err)
	}
	if buf.String() != data || res.Bytes != int64(len(data)) || res.Portions < 8 {
		t.Errorf("downloaded %d bytes in %d portions, equal %v", res.Bytes, res.Portions, buf.String() == data)
	}
	_, err = f.c.DownloadLogFile(f.ctx, aws.DownloadLogParams{InstanceID: "green", File: "nope", W: &buf})
	if !aws.IsNotFound(err) || !strings.Contains(err.Error(), "rds DownloadDBLogFilePortion: not found (DBLogFileNotFoundFault)") {
		t.Errorf("err = %v", err)
	}
}

func TestFindRedoDoneWithoutTheLine(t *testing.T) {
	f := newFixture(t)
	f.srv.AddInstance(awstest.Instance{ID: "green", Class: "db.m6g.large"})
	f.srv.AddLogFile("green", awstest.LogFile{Name: "error/postgresql.log", LastWritten: time.Now(), Data: "2024-01-05 10:00:00 UTC::@:[1]:LOG:  database system is ready to accept connections\n"})
	res, err := f.c.FindRedoDone(f.ctx, aws.FindRedoDoneParams{InstanceID: "green"})
	if err != nil || res.Found || res.FilesRead != 1 {
		t.Fatalf("FindRedoDone = %+v, %v", res, err)
	}
}
