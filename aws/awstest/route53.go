package awstest

import (
	"encoding/xml"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Record is a DNS record set of the model.
type Record struct {
	Name   string // with the final dot, as Route 53 keeps names
	Type   string
	TTL    int64
	Values []string
}

type zone struct {
	id      string
	records map[string]*Record // key: name + " " + type
}

type change struct {
	id     string
	status string
	t      *transition
}

const r53NS = "https://route53.amazonaws.com/doc/2013-04-01/"

// AddHostedZone seeds an empty hosted zone.
func (s *Server) AddHostedZone(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[id] = &zone{id: id, records: map[string]*Record{}}
}

// GetRecord reports a record set of a zone.
func (s *Server) GetRecord(zoneID, name, typ string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zones[zoneID]
	if z == nil {
		return Record{}, false
	}
	r := z.records[fqdn(name)+" "+typ]
	if r == nil {
		return Record{}, false
	}
	return *r, true
}

func fqdn(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

type xChangeBatchRequest struct {
	XMLName     xml.Name `xml:"ChangeResourceRecordSetsRequest"`
	ChangeBatch struct {
		Comment string
		Changes []struct {
			Action            string
			ResourceRecordSet xRecordSet
		} `xml:"Changes>Change"`
	}
}

type xRecordSet struct {
	Name            string
	Type            string
	TTL             int64    `xml:",omitempty"`
	ResourceRecords []string `xml:"ResourceRecords>ResourceRecord>Value"`
}

type xChangeInfo struct {
	Id          string
	Status      string
	SubmittedAt string
	Comment     string `xml:",omitempty"`
}

func (s *Server) serveRoute53(w http.ResponseWriter, r *http.Request, body []byte) {
	path := strings.TrimPrefix(r.URL.Path, "/2013-04-01/")
	parts := strings.Split(strings.TrimSuffix(path, "/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	reqID := "req-" + s.newID()
	fail := func(f *Fault) { writeXMLError(w, r53NS, f, reqID) }
	switch {
	case len(parts) == 3 && parts[0] == "hostedzone" && parts[2] == "rrset" && r.Method == http.MethodPost:
		var req xChangeBatchRequest
		if err := xml.Unmarshal(body, &req); err != nil {
			fail(&Fault{Code: "InvalidInput", Message: "bad XML: " + err.Error(), Status: 400})
			return
		}
		params := map[string]string{"HostedZoneId": parts[1], "Comment": req.ChangeBatch.Comment}
		for i, c := range req.ChangeBatch.Changes {
			pre := ""
			if i > 0 {
				pre = "Change." + strconv.Itoa(i+1) + "."
			}
			params[pre+"Action"] = c.Action
			params[pre+"Name"] = c.ResourceRecordSet.Name
			params[pre+"Type"] = c.ResourceRecordSet.Type
			params[pre+"TTL"] = strconv.FormatInt(c.ResourceRecordSet.TTL, 10)
			params[pre+"Value"] = strings.Join(c.ResourceRecordSet.ResourceRecords, ",")
		}
		if f := s.record("route53", "ChangeResourceRecordSets", params); f != nil {
			fail(f)
			return
		}
		z := s.zones[parts[1]]
		if z == nil {
			fail(&Fault{Code: "NoSuchHostedZone", Message: "No hosted zone found with ID: " + parts[1], Status: 404})
			return
		}
		for _, c := range req.ChangeBatch.Changes {
			rs := c.ResourceRecordSet
			key := fqdn(rs.Name) + " " + rs.Type
			switch c.Action {
			case "UPSERT":
			case "CREATE":
				if z.records[key] != nil {
					fail(&Fault{Code: "InvalidChangeBatch", Message: "Tried to create resource record set " + key + " but it already exists", Status: 400})
					return
				}
			case "DELETE":
				// Route 53 deletes only a record named exactly as it is.
				cur := z.records[key]
				if cur == nil || cur.TTL != rs.TTL || strings.Join(cur.Values, ",") != strings.Join(rs.ResourceRecords, ",") {
					fail(&Fault{Code: "InvalidChangeBatch", Message: "Tried to delete resource record set [name='" + fqdn(rs.Name) + "', type='" + rs.Type + "'] but it was not found (or its values differ)", Status: 400})
					return
				}
				delete(z.records, key)
				continue
			default:
				fail(&Fault{Code: "InvalidInput", Message: "unknown action " + c.Action, Status: 400})
				return
			}
			z.records[key] = &Record{Name: fqdn(rs.Name), Type: rs.Type, TTL: rs.TTL, Values: rs.ResourceRecords}
		}
		ch := &change{id: "C" + s.newID(), status: "PENDING"}
		ch.t = s.after(func() { ch.status = "INSYNC" })
		s.changes[ch.id] = ch
		writeR53(w, "ChangeResourceRecordSetsResponse", struct{ ChangeInfo xChangeInfo }{changeInfo(ch, req.ChangeBatch.Comment)})
	case len(parts) == 3 && parts[0] == "hostedzone" && parts[2] == "rrset" && r.Method == http.MethodGet:
		q := r.URL.Query()
		params := map[string]string{"HostedZoneId": parts[1], "StartRecordName": q.Get("name"), "StartRecordType": q.Get("type"), "MaxItems": q.Get("maxitems")}
		if f := s.record("route53", "ListResourceRecordSets", params); f != nil {
			fail(f)
			return
		}
		z := s.zones[parts[1]]
		if z == nil {
			fail(&Fault{Code: "NoSuchHostedZone", Message: "No hosted zone found with ID: " + parts[1], Status: 404})
			return
		}
		writeR53(w, "ListResourceRecordSetsResponse", listRecords(z, q.Get("name"), q.Get("type"), q.Get("maxitems")))
	case len(parts) == 2 && parts[0] == "change" && r.Method == http.MethodGet:
		if f := s.record("route53", "GetChange", map[string]string{"Id": parts[1]}); f != nil {
			fail(f)
			return
		}
		ch := s.changes[parts[1]]
		if ch == nil {
			fail(&Fault{Code: "NoSuchChange", Message: "Could not find resource with ID: " + parts[1], Status: 404})
			return
		}
		tick(&ch.t)
		writeR53(w, "GetChangeResponse", struct{ ChangeInfo xChangeInfo }{changeInfo(ch, "")})
	default:
		s.record("route53", "Unknown", map[string]string{"Path": r.URL.Path})
		fail(&Fault{Code: "InvalidInput", Message: "unsupported request " + r.Method + " " + r.URL.Path, Status: 400})
	}
}

func changeInfo(ch *change, comment string) xChangeInfo {
	return xChangeInfo{Id: "/change/" + ch.id, Status: ch.status, SubmittedAt: time.Date(2024, 1, 5, 10, 0, 0, 0, time.UTC).Format(time.RFC3339), Comment: comment}
}

// listRecords answers ListResourceRecordSets in Route 53's order (by name,
// then type), starting at name/type.
func listRecords(z *zone, name, typ, maxItems string) any {
	keys := make([]string, 0, len(z.records))
	for k := range z.records {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	max, err := strconv.Atoi(maxItems)
	if err != nil || max <= 0 {
		max = 100
	}
	var out struct {
		ResourceRecordSets []xRecordSet `xml:"ResourceRecordSets>ResourceRecordSet"`
		IsTruncated        bool
		MaxItems           string
	}
	out.MaxItems = strconv.Itoa(max)
	start := ""
	if name != "" {
		start = fqdn(name) + " " + typ
	}
	for _, k := range keys {
		if k < start {
			continue
		}
		if len(out.ResourceRecordSets) == max {
			out.IsTruncated = true
			break
		}
		rec := z.records[k]
		out.ResourceRecordSets = append(out.ResourceRecordSets, xRecordSet{Name: rec.Name, Type: rec.Type, TTL: rec.TTL, ResourceRecords: rec.Values})
	}
	return out
}

func writeR53(w http.ResponseWriter, root string, v any) {
	b, err := xml.Marshal(wrap{name: root, v: v})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}
