package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/pgbluegreen/pgbluegreen/pg/lsn"
)

// LogFile is one of an RDS instance's log files.
type LogFile struct {
	Name        string // "error/postgresql.log.2024-01-05-10"
	LastWritten time.Time
	Size        int64
}

// ListLogFilesParams name the instance and the earliest time of interest.
type ListLogFilesParams struct {
	InstanceID string
	// Since keeps only files written at or after this time (zero: all).
	Since time.Time
}

// Plan is the call ListLogFiles makes, once per page. FileLastWritten is
// in milliseconds since the epoch, as RDS takes it.
func (p ListLogFilesParams) Plan() []PlannedCall {
	c := call("rds DescribeDBLogFiles", "DBInstanceIdentifier", p.InstanceID)
	if !p.Since.IsZero() {
		c.add("FileLastWritten", strconv.FormatInt(p.Since.UnixMilli(), 10))
	}
	return one(c)
}

// ListLogFiles lists an instance's log files written since p.Since (rds
// DescribeDBLogFiles, every page), oldest first, so that the first match
// found reading them in order is the first in time.
func (c *Client) ListLogFiles(ctx context.Context, p ListLogFilesParams) ([]LogFile, error) {
	in := &rds.DescribeDBLogFilesInput{DBInstanceIdentifier: sdkaws.String(p.InstanceID)}
	if !p.Since.IsZero() {
		in.FileLastWritten = sdkaws.Int64(p.Since.UnixMilli())
	}
	var files []LogFile
	err := eachPage(ctx, c, p.Plan()[0], rds.NewDescribeDBLogFilesPaginator(c.rds, in),
		func(out *rds.DescribeDBLogFilesOutput) {
			for _, f := range out.DescribeDBLogFiles {
				files = append(files, LogFile{
					Name:        sdkaws.ToString(f.LogFileName),
					LastWritten: time.UnixMilli(sdkaws.ToInt64(f.LastWritten)).UTC(),
					Size:        sdkaws.ToInt64(f.Size),
				})
			}
		})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(files, func(i, j int) bool {
		if !files[i].LastWritten.Equal(files[j].LastWritten) {
			return files[i].LastWritten.Before(files[j].LastWritten)
		}
		return files[i].Name < files[j].Name
	})
	return files, nil
}

// DownloadLogParams name one log file and where to write it.
type DownloadLogParams struct {
	InstanceID string
	File       string
	// W receives the file's text, portion by portion.
	W io.Writer
}

// DownloadLogResult says how much was read.
type DownloadLogResult struct {
	Bytes    int64
	Portions int
}

// DownloadMarkers is how a plan shows the Marker of a download's portions:
// "0", then each Marker RDS returns, known only as the download goes.
const DownloadMarkers = "<0, then each Marker returned>"

// Plan is the call DownloadLogFile makes for each portion, its Marker
// shown as DownloadMarkers.
func (p DownloadLogParams) Plan() []PlannedCall {
	return one(portionCall(p.InstanceID, p.File, DownloadMarkers))
}

func portionCall(instance, file, marker string) PlannedCall {
	return call("rds DownloadDBLogFilePortion", "DBInstanceIdentifier", instance, "LogFileName", file, "Marker", marker)
}

// maxPortions guards against a server that keeps saying more data is
// pending: a 1 GB log is about 1,000 portions of 1 MB.
const maxPortions = 100000

// DownloadLogFile reads a whole log file (rds DownloadDBLogFilePortion from
// marker "0", following Marker while AdditionalDataPending) into p.W. An
// error from p.W stops the download and is returned as is, so a reader that
// found what it wanted can stop it early.
func (c *Client) DownloadLogFile(ctx context.Context, p DownloadLogParams) (DownloadLogResult, error) {
	var res DownloadLogResult
	marker := "0"
	for res.Portions < maxPortions {
		var out *rds.DownloadDBLogFilePortionOutput
		err := c.call(ctx, portionCall(p.InstanceID, p.File, marker), func(ctx context.Context) error {
			var err error
			out, err = c.rds.DownloadDBLogFilePortion(ctx, &rds.DownloadDBLogFilePortionInput{
				DBInstanceIdentifier: sdkaws.String(p.InstanceID),
				LogFileName:          sdkaws.String(p.File),
				Marker:               sdkaws.String(marker),
			})
			return err
		})
		if err != nil {
			return res, err
		}
		res.Portions++
		data := sdkaws.ToString(out.LogFileData)
		if data != "" {
			n, werr := io.WriteString(p.W, data)
			res.Bytes += int64(n)
			if werr != nil {
				return res, werr
			}
		}
		next := sdkaws.ToString(out.Marker)
		if !sdkaws.ToBool(out.AdditionalDataPending) || next == "" || next == marker {
			return res, nil
		}
		marker = next
	}
	return res, fmt.Errorf("download log file %s of %s: more than %d portions; the file is too large to read this way", p.File, p.InstanceID, maxPortions)
}

// FindRedoDoneParams name green's instance and when its restore started.
type FindRedoDoneParams struct {
	InstanceID string
	// Since is the restore's start: older files cannot hold its recovery.
	Since time.Time
}

// Plan lists the calls FindRedoDone makes: the list of files, then the
// portions of each file, oldest first, until the line is found.
func (p FindRedoDoneParams) Plan() []PlannedCall {
	return append(ListLogFilesParams{InstanceID: p.InstanceID, Since: p.Since}.Plan(),
		portionCall(p.InstanceID, "<each file, oldest first, until the line is found>", DownloadMarkers))
}

// FindRedoDoneResult is the first "redo done at" of the instance's logs.
type FindRedoDoneResult struct {
	Found bool
	// LSN is as logged: the start of the last WAL record replayed.
	LSN lsn.LSN
	// SeedLSN is LSN + 1 byte: the end of that record as far as logical
	// decoding cares, where green's subscription origin must be advanced to
	// (RUNBOOK "The seed LSN, exactly").
	SeedLSN lsn.LSN
	// File is the log file it was found in.
	File string
	// FilesRead counts the files downloaded to find it.
	FilesRead int
}

// errStopDownload ends a download once the parser has its answer.
var errStopDownload = errors.New("stop download: line found")

// FindRedoDone reads green's log files written since p.Since, oldest first,
// and returns the first "redo done at" message (lsn.FirstRedoDone) and the seed
// LSN. Each file is parsed while it downloads, and the download stops at the
// match.
func (c *Client) FindRedoDone(ctx context.Context, p FindRedoDoneParams) (FindRedoDoneResult, error) {
	var res FindRedoDoneResult
	files, err := c.ListLogFiles(ctx, ListLogFilesParams{InstanceID: p.InstanceID, Since: p.Since})
	if err != nil {
		return res, err
	}
	for _, f := range files {
		redo, found, err := c.parseLogFile(ctx, p.InstanceID, f.Name)
		res.FilesRead++
		if err != nil {
			return res, err
		}
		if found {
			seed, err := redo.Add(1)
			if err != nil {
				return res, fmt.Errorf("log file %s of %s: %w", f.Name, p.InstanceID, err)
			}
			res.Found, res.LSN, res.SeedLSN, res.File = true, redo, seed, f.Name
			return res, nil
		}
	}
	return res, nil
}

// parseLogFile streams one file through lsn.FirstRedoDone via a pipe.
func (c *Client) parseLogFile(ctx context.Context, instance, file string) (lsn.LSN, bool, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := c.DownloadLogFile(ctx, DownloadLogParams{InstanceID: instance, File: file, W: pw})
		pw.CloseWithError(err) // nil closes with EOF
		done <- err
	}()
	redo, perr := lsn.FirstRedoDone(pr, "")
	pr.CloseWithError(errStopDownload)
	derr := <-done
	if derr != nil && !errors.Is(derr, errStopDownload) {
		return 0, false, derr
	}
	if errors.Is(perr, lsn.ErrNoRedoDone) {
		return 0, false, nil
	}
	if perr != nil {
		return 0, false, fmt.Errorf("log file %s of %s: %w", file, instance, perr)
	}
	return redo, true, nil
}
