package awstest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pgbluegreen/pgbluegreen/aws/awstest"
)

// post sends a signed-looking RDS query request and returns status and body.
func post(t *testing.T, srv *awstest.Server, form url.Values) (int, string) {
	t.Helper()
	return srv.PostRDS(t, form)
}

func TestRDSAnswersInAWSShape(t *testing.T) {
	srv := awstest.New(t)
	srv.AddCluster(awstest.Cluster{ID: "blue", EngineVersion: "15.4", SecurityGroupIDs: []string{"sg-1"}})
	srv.AddInstance(awstest.Instance{ID: "blue-1", ClusterID: "blue", Class: "db.r6g.large"})

	code, body := post(t, srv, url.Values{"Action": {"DescribeDBClusters"}, "Version": {"2014-10-31"}, "DBClusterIdentifier": {"blue"}})
	for _, want := range []string{
		`<DescribeDBClustersResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">`,
		`<DescribeDBClustersResult><DBClusters><DBCluster><DBClusterIdentifier>blue</DBClusterIdentifier>`,
		`<VpcSecurityGroups><VpcSecurityGroupMembership><VpcSecurityGroupId>sg-1</VpcSecurityGroupId>`,
		`<DBClusterMembers><DBClusterMember><DBInstanceIdentifier>blue-1</DBInstanceIdentifier><IsClusterWriter>true</IsClusterWriter>`,
		`<ResponseMetadata><RequestId>`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("status %d, body lacks %s:\n%s", code, want, body)
		}
	}

	code, body = post(t, srv, url.Values{"Action": {"DescribeDBClusters"}, "Version": {"2014-10-31"}, "DBClusterIdentifier": {"nope"}})
	want := `<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error><Type>Sender</Type><Code>DBClusterNotFoundFault</Code><Message>DBCluster nope not found.</Message></Error><RequestId>`
	if code != 404 || !strings.HasPrefix(body, want) {
		t.Errorf("status %d body %s", code, body)
	}

	srv.Fail("DescribeDBInstances", awstest.Fault{Code: "Throttling", Times: 1})
	if code, _ := post(t, srv, url.Values{"Action": {"DescribeDBInstances"}, "Version": {"2014-10-31"}}); code != 400 {
		t.Errorf("injected fault: status %d", code)
	}
	if code, _ := post(t, srv, url.Values{"Action": {"DescribeDBInstances"}, "Version": {"2014-10-31"}}); code != 200 {
		t.Errorf("after the fault's one time: status %d", code)
	}
	if got := srv.Calls("DescribeDBInstances"); len(got) != 2 || got[0].Service != "rds" {
		t.Errorf("recorded %+v", got)
	}
}

func TestUnsignedRequestsAreRefused(t *testing.T) {
	srv := awstest.New(t)
	resp, err := http.PostForm(srv.URL, url.Values{"Action": {"DescribeDBClusters"}, "Version": {"2014-10-31"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("status %d", resp.StatusCode)
	}
}
