package awstest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"time"
)

// The XML shapes below follow the element names of the SDK's RDS
// deserializers (service/rds deserializers.go): lists are wrapped, with
// members named after their type (DBClusters>DBCluster,
// VpcSecurityGroups>VpcSecurityGroupMembership, Parameters>Parameter,
// DescribeDBLogFiles>DescribeDBLogFilesDetails), plain string lists use
// "member", and every answer sits in <ActionResponse><ActionResult>.

type xVpcSG struct {
	VpcSecurityGroupId string
	Status             string
}

type xMember struct {
	DBInstanceIdentifier          string
	IsClusterWriter               bool
	DBClusterParameterGroupStatus string
	PromotionTier                 int
}

type xCluster struct {
	DBClusterIdentifier          string
	DBClusterArn                 string
	Status                       string
	Engine                       string
	EngineVersion                string
	Endpoint                     string `xml:",omitempty"`
	ReaderEndpoint               string `xml:",omitempty"`
	Port                         int
	DBClusterParameterGroup      string
	DBSubnetGroup                string
	DeletionProtection           bool
	EnabledCloudwatchLogsExports []string  `xml:"EnabledCloudwatchLogsExports>member"`
	VpcSecurityGroups            []xVpcSG  `xml:"VpcSecurityGroups>VpcSecurityGroupMembership"`
	DBClusterMembers             []xMember `xml:"DBClusterMembers>DBClusterMember"`
	CloneGroupId                 string    `xml:",omitempty"`
	ClusterCreateTime            string    `xml:",omitempty"`
}

type xEndpoint struct {
	Address      string
	Port         int
	HostedZoneId string
}

type xPGStatus struct {
	DBParameterGroupName string
	ParameterApplyStatus string
}

type xSubnetGroup struct {
	DBSubnetGroupName string
}

type xInstance struct {
	DBInstanceIdentifier             string
	DBInstanceArn                    string
	DBClusterIdentifier              string `xml:",omitempty"`
	DBInstanceStatus                 string
	DBInstanceClass                  string
	Engine                           string
	EngineVersion                    string
	Endpoint                         *xEndpoint  `xml:",omitempty"`
	DBParameterGroups                []xPGStatus `xml:"DBParameterGroups>DBParameterGroup"`
	DBSubnetGroup                    *xSubnetGroup
	VpcSecurityGroups                []xVpcSG `xml:"VpcSecurityGroups>VpcSecurityGroupMembership"`
	MultiAZ                          bool
	PubliclyAccessible               bool
	IAMDatabaseAuthenticationEnabled bool
	DeletionProtection               bool
}

type xSnapshot struct {
	DBSnapshotIdentifier string
	DBSnapshotArn        string
	DBInstanceIdentifier string
	Status               string
	Engine               string
	EngineVersion        string
	SnapshotType         string
	SnapshotCreateTime   string
}

type xClusterSnapshot struct {
	DBClusterSnapshotIdentifier string
	DBClusterSnapshotArn        string
	DBClusterIdentifier         string
	Status                      string
	Engine                      string
	EngineVersion               string
	SnapshotType                string
	SnapshotCreateTime          string
}

type xParameter struct {
	ParameterName  string
	ParameterValue string `xml:",omitempty"`
	ApplyType      string
	Source         string
	IsModifiable   bool
	DataType       string
}

type xLogFile struct {
	LogFileName string
	LastWritten int64
	Size        int64
}

func (s *Server) renderCluster(c *cluster) xCluster {
	x := xCluster{
		DBClusterIdentifier:          c.ID,
		DBClusterArn:                 arn("cluster", c.ID),
		Status:                       c.Status,
		Engine:                       c.Engine,
		EngineVersion:                c.EngineVersion,
		Port:                         5432,
		DBClusterParameterGroup:      c.ParameterGroup,
		DBSubnetGroup:                c.SubnetGroup,
		DeletionProtection:           c.DeletionProtection,
		EnabledCloudwatchLogsExports: c.LogExports,
		CloneGroupId:                 c.SourceID,
	}
	if !c.Created.IsZero() {
		x.ClusterCreateTime = c.Created.Format(time.RFC3339Nano)
	}
	if c.Status != "creating" {
		x.Endpoint = clusterEndpoint(c.ID)
		x.ReaderEndpoint = clusterReaderEndpoint(c.ID)
	}
	for _, sg := range c.SecurityGroupIDs {
		x.VpcSecurityGroups = append(x.VpcSecurityGroups, xVpcSG{VpcSecurityGroupId: sg, Status: "active"})
	}
	for _, in := range s.members(c.ID) {
		x.DBClusterMembers = append(x.DBClusterMembers, xMember{
			DBInstanceIdentifier: in.ID, IsClusterWriter: in.Writer,
			DBClusterParameterGroupStatus: in.clusterApply, PromotionTier: 1,
		})
	}
	return x
}

func (s *Server) renderInstance(in *instance) xInstance {
	x := xInstance{
		DBInstanceIdentifier:             in.ID,
		DBInstanceArn:                    arn("db", in.ID),
		DBClusterIdentifier:              in.ClusterID,
		DBInstanceStatus:                 in.Status,
		DBInstanceClass:                  in.Class,
		Engine:                           in.Engine,
		EngineVersion:                    in.EngineVersion,
		MultiAZ:                          in.MultiAZ,
		PubliclyAccessible:               in.PubliclyAccessible,
		IAMDatabaseAuthenticationEnabled: in.IAMAuth,
		DeletionProtection:               in.DeletionProtection,
	}
	if in.Status != "creating" {
		x.Endpoint = &xEndpoint{Address: instanceEndpoint(in.ID), Port: 5432, HostedZoneId: "ZFAKE"}
	}
	x.DBParameterGroups = []xPGStatus{{DBParameterGroupName: s.instanceGroup(in), ParameterApplyStatus: in.apply}}
	if in.SubnetGroup != "" {
		x.DBSubnetGroup = &xSubnetGroup{DBSubnetGroupName: in.SubnetGroup}
	}
	for _, sg := range in.SecurityGroupIDs {
		x.VpcSecurityGroups = append(x.VpcSecurityGroups, xVpcSG{VpcSecurityGroupId: sg, Status: "active"})
	}
	return x
}

var snapshotTime = time.Date(2024, 1, 5, 10, 0, 0, 0, time.UTC).Format(time.RFC3339)

func renderSnapshot(sn *snapshot) any {
	if sn.cluster {
		return xClusterSnapshot{
			DBClusterSnapshotIdentifier: sn.ID, DBClusterSnapshotArn: arn("cluster-snapshot", sn.ID),
			DBClusterIdentifier: sn.SourceID, Status: sn.Status, Engine: sn.Engine,
			EngineVersion: sn.EngineVersion, SnapshotType: "manual", SnapshotCreateTime: snapshotTime,
		}
	}
	return xSnapshot{
		DBSnapshotIdentifier: sn.ID, DBSnapshotArn: arn("snapshot", sn.ID),
		DBInstanceIdentifier: sn.SourceID, Status: sn.Status, Engine: sn.Engine,
		EngineVersion: sn.EngineVersion, SnapshotType: "manual", SnapshotCreateTime: snapshotTime,
	}
}

const rdsNS = "http://rds.amazonaws.com/doc/2014-10-31/"

// writeRDS answers an action with its result wrapped as AWS does.
func (s *Server) writeRDS(w http.ResponseWriter, action string, result any, reqID string) {
	out, err := xml.Marshal(struct {
		XMLName  xml.Name
		XMLNS    string `xml:"xmlns,attr"`
		Result   any
		Metadata struct {
			RequestId string
		} `xml:"ResponseMetadata"`
	}{XMLName: xml.Name{Local: action + "Response"}, XMLNS: rdsNS, Result: wrap{name: action + "Result", v: result}, Metadata: struct{ RequestId string }{reqID}})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", reqID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// wrap marshals v under a chosen element name.
type wrap struct {
	name string
	v    any
}

// MarshalXML implements xml.Marshaler.
func (x wrap) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	return e.EncodeElement(x.v, xml.StartElement{Name: xml.Name{Local: x.name}})
}

// writeXMLError answers with AWS's XML error document (RDS and Route 53).
func writeXMLError(w http.ResponseWriter, ns string, f *Fault, reqID string) {
	typ := "Sender"
	if f.Status >= 500 {
		typ = "Receiver"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>`, ns, typ, f.Code)
	_ = xml.EscapeText(&b, []byte(f.Message))
	fmt.Fprintf(&b, `</Message></Error><RequestId>%s</RequestId></ErrorResponse>`, reqID)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", reqID)
	w.WriteHeader(f.Status)
	_, _ = w.Write(b.Bytes())
}
