package collector

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

const validReport = `{"policy_id":1,"flow":{"src_ip":"10.0.0.1","dst_ip":"2001:db8::1","src_port":1234,"dst_port":443,"protocol":6},"packets":3,"bytes":1800}`

func TestDecodeBatch(t *testing.T) {
	body := `{"reports":[` + validReport + `,
		{"flow":{"src_ip":"::ffff:192.0.2.1","dst_ip":"192.0.2.2","src_port":0,"dst_port":0,"protocol":1},"packets":0,"bytes":9223372036854775807,"policy_id":null},
		{"flow":{"src\u005fip":"fe80::1","dst_ip":"\u0031.2.3.4","protocol":17,"src_port":65535,"dst_port":0},"bytes":1,"packets":1,"policy_id":9223372036854775807},
		{"path_id":12,"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"protocol":6},"packets":4,"bytes":400},
		{"path_id":null,"policy_id":2,"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"protocol":6},"packets":4,"bytes":400}
	]}`
	got, err := DecodeBatch(strings.NewReader(body), MaxBatchReports)
	if err != nil {
		t.Fatal(err)
	}
	want := []Report{
		{PolicyID: ptr(int64(1)), Flow: flow(t, "10.0.0.1", "2001:db8::1", 1234, 443, 6), Packets: 3, Bytes: 1800},
		{Flow: flow(t, "192.0.2.1", "192.0.2.2", 0, 0, 1), Packets: 0, Bytes: 1<<63 - 1},
		{PolicyID: ptr(int64(1<<63 - 1)), Flow: flow(t, "fe80::1", "1.2.3.4", 65535, 0, 17), Packets: 1, Bytes: 1},
		{PathID: 12, Flow: flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6), Packets: 4, Bytes: 400},
		{PolicyID: ptr(int64(2)), Flow: flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6), Packets: 4, Bytes: 400},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeBatch =\n%+v\nwant\n%+v", got, want)
	}
	if got[1].Flow.SrcIP.Is4In6() {
		t.Error("a 4-in-6 address was not unmapped")
	}

	round, err := DecodeBatch(strings.NewReader(string(AppendBatchJSON(nil, got))), 0)
	if err != nil || !reflect.DeepEqual(round, want) {
		t.Fatalf("round trip through AppendBatchJSON = %+v, %v", round, err)
	}

	t.Run("Empty", func(t *testing.T) {
		got, err := DecodeBatch(strings.NewReader(` { "reports" : [ ] } `), 10)
		if err != nil || len(got) != 0 {
			t.Fatalf("= %v, %v", got, err)
		}
	})
	t.Run("ReadError", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := DecodeBatch(iotest.ErrReader(boom), 10)
		var ve *ValidationError
		if !errors.Is(err, boom) || errors.As(err, &ve) {
			t.Fatalf("err = %v, want the read error, not a validation error", err)
		}
	})
}

func TestDecodeBatchErrors(t *testing.T) {
	// report returns a batch whose report 1 is valid except that old is replaced by new.
	report := func(old, new string) string {
		if !strings.Contains(validReport, old) {
			panic("test case does not apply: " + old)
		}
		return `{"reports":[` + validReport + `,` + strings.Replace(validReport, old, new, 1) + `]}`
	}
	cases := []struct {
		name, body string
		index      int
		field      string
		message    string // a part of the message
	}{
		{"Empty", ``, -1, "", "unexpected end"},
		{"NotObject", `[]`, -1, "", "must be an object"},
		{"MalformedTop", `{"reports":[` + validReport + `}`, -1, "reports", "invalid JSON"},
		{"Trailing", `{"reports":[]} x`, -1, "", "data after"},
		{"MissingReports", `{}`, -1, "reports", "is required"},
		{"UnknownTop", `{"reports":[],"extra":1}`, -1, "extra", "unknown field"},
		{"DuplicateTop", `{"reports":[],"reports":[]}`, -1, "reports", "duplicate"},
		{"ReportsNotArray", `{"reports":{}}`, -1, "reports", "must be an array, not an object"},
		{"TooMany", `{"reports":[` + strings.Repeat(validReport+",", 3) + validReport + `]}`, -1, "reports", "more than 3 reports"},
		{"ReportNotObject", `{"reports":[` + validReport + `,7]}`, 1, "reports[1]", "must be an object, not a number"},
		{"UnknownField", report(`"packets":3`, `"packets":3,"color":"red"`), 1, "reports[1].color", "unknown field"},
		{"UnknownFlowField", report(`"protocol":6`, `"protocol":6,"tos":1`), 1, "reports[1].flow.tos", "unknown field"},
		{"DuplicateField", report(`"packets":3`, `"packets":3,"packets":4`), 1, "reports[1].packets", "duplicate field"},
		{"BadIP", report(`"10.0.0.1"`, `"10.0.0.256"`), 1, "reports[1].flow.src_ip", "not an IP address"},
		{"IPWithZone", report(`"10.0.0.1"`, `"fe80::1%eth0"`), 1, "reports[1].flow.src_ip", "not an IP address"},
		{"IPNotString", report(`"2001:db8::1"`, `7`), 1, "reports[1].flow.dst_ip", "must be a string, not a number"},
		{"MissingSrcIP", report(`"src_ip":"10.0.0.1",`, ``), 1, "reports[1].flow.src_ip", "is required"},
		{"MissingProtocol", report(`,"protocol":6`, ``), 1, "reports[1].flow.protocol", "is required"},
		{"MissingSrcPort", report(`"src_port":1234,`, ``), 1, "reports[1].flow.src_port", "is required"},
		{"MissingDstPort", report(`"dst_port":443,`, ``), 1, "reports[1].flow.dst_port", "is required"},
		{"MissingFlow", report(`"flow":{"src_ip":"10.0.0.1","dst_ip":"2001:db8::1","src_port":1234,"dst_port":443,"protocol":6},`, ``), 1, "reports[1].flow", "is required"},
		{"EmptyFlow", report(`{"src_ip":"10.0.0.1","dst_ip":"2001:db8::1","src_port":1234,"dst_port":443,"protocol":6}`, `{}`), 1, "reports[1].flow.src_ip", "is required"},
		{"FlowNull", report(`{"src_ip":"10.0.0.1","dst_ip":"2001:db8::1","src_port":1234,"dst_port":443,"protocol":6}`, `null`), 1, "reports[1].flow", "must be an object, not null"},
		{"PortTooBig", report(`"dst_port":443`, `"dst_port":65536`), 1, "reports[1].flow.dst_port", "at most 65535"},
		{"ProtocolTooBig", report(`"protocol":6`, `"protocol":256`), 1, "reports[1].flow.protocol", "at most 255"},
		{"NegativePackets", report(`"packets":3`, `"packets":-3`), 1, "reports[1].packets", "must not be negative"},
		{"FractionalBytes", report(`"bytes":1800`, `"bytes":1800.5`), 1, "reports[1].bytes", "must be an integer"},
		{"ExponentBytes", report(`"bytes":1800`, `"bytes":1e3`), 1, "reports[1].bytes", "must be an integer"},
		{"BytesOverflow", report(`"bytes":1800`, `"bytes":18446744073709551616`), 1, "reports[1].bytes", "at most 9223372036854775807"},
		{"BytesOverInt64", report(`"bytes":1800`, `"bytes":9223372036854775808`), 1, "reports[1].bytes", "at most 9223372036854775807"},
		{"PacketsOverInt64", report(`"packets":3`, `"packets":18446744073709551615`), 1, "reports[1].packets", "at most 9223372036854775807"},
		{"PacketsString", report(`"packets":3`, `"packets":"3"`), 1, "reports[1].packets", "must be an integer, not a string"},
		{"PacketsBool", report(`"packets":3`, `"packets":true`), 1, "reports[1].packets", "not a boolean"},
		{"LeadingZero", report(`"packets":3`, `"packets":03`), 1, "reports[1].packets", "invalid JSON"},
		{"BadNumber", report(`"packets":3`, `"packets":-`), 1, "reports[1].packets", "invalid JSON"},
		{"PolicyZero", report(`"policy_id":1`, `"policy_id":0`), 1, "reports[1].policy_id", "positive"},
		{"PolicyNegative", report(`"policy_id":1`, `"policy_id":-1`), 1, "reports[1].policy_id", "negative"},
		{"PolicyTooBig", report(`"policy_id":1`, `"policy_id":9223372036854775808`), 1, "reports[1].policy_id", "at most"},
		{"PathZero", report(`"policy_id":1`, `"policy_id":1,"path_id":0`), 1, "reports[1].path_id", "positive"},
		{"PathNegative", report(`"policy_id":1`, `"policy_id":1,"path_id":-4`), 1, "reports[1].path_id", "negative"},
		{"PathString", report(`"policy_id":1`, `"policy_id":1,"path_id":"4"`), 1, "reports[1].path_id", "must be an integer, not a string"},
		{"PathDuplicate", report(`"policy_id":1`, `"path_id":2,"policy_id":1,"path_id":3`), 1, "reports[1].path_id", "duplicate field"},
		{"MissingComma", report(`"packets":3,`, `"packets":3 `), 1, "reports[1]", "invalid JSON"},
		{"UnterminatedString", `{"reports":[{"flow":{"src_ip":"10.0`, 0, "reports[0].flow.src_ip", "invalid JSON"},
		{"ControlInString", "{\"reports\":[{\"flow\":{\"src_ip\":\"10.0\n\"", 0, "reports[0].flow.src_ip", "control characters"},
		{"BadEscape", `{"reports":[{"flow":{"src_ip":"\x"}}]}`, 0, "reports[0].flow.src_ip", "valid escape"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeBatch(strings.NewReader(tc.body), 3)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("DecodeBatch = %v, %v; want a ValidationError", got, err)
			}
			if ve.Index != tc.index || ve.Field != tc.field || !strings.Contains(ve.Message, tc.message) {
				t.Fatalf("error = {Index:%d Field:%q Message:%q}, want index %d field %q message containing %q",
					ve.Index, ve.Field, ve.Message, tc.index, tc.field, tc.message)
			}
			// Reports come back only beside problems with whole values, for the caller to add its own.
			if got != nil && ve.Kind != InvalidValue {
				t.Errorf("reports returned with an error: %v", got)
			}
			wantKind := InvalidValue
			switch {
			case strings.Contains(tc.message, "invalid JSON"), strings.Contains(tc.message, "unexpected end"),
				strings.Contains(tc.message, "data after"), strings.Contains(tc.message, "control characters"),
				strings.Contains(tc.message, "valid escape"):
				wantKind = MalformedJSON
			case tc.name == "TooMany":
				wantKind = TooManyReports
			}
			if ve.Kind != wantKind {
				t.Errorf("Kind = %d, want %d (%s)", ve.Kind, wantKind, ve.Message)
			}
		})
	}
}

// TestDecodeBatchReaderChunks checks that a reader returning one byte at a time works.
func TestDecodeBatchReaderChunks(t *testing.T) {
	body := `{"reports":[` + validReport + `]}`
	got, err := DecodeBatch(iotest.OneByteReader(strings.NewReader(body)), 1)
	if err != nil || len(got) != 1 || got[0].Bytes != 1800 {
		t.Fatalf("= %+v, %v", got, err)
	}
	_, err = DecodeBatch(io.MultiReader(strings.NewReader(body[:10]), strings.NewReader(body[10:])), 1)
	if err != nil {
		t.Fatal(err)
	}
}

// TestDecodeBatchReportsEveryValueError checks that the decoder goes on past a bad value, so
// one answer names every bad value of a batch, and that it stops at MaxValidationErrors.
func TestDecodeBatchReportsEveryValueError(t *testing.T) {
	body := `{"reports":[` +
		`{"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":70000,"protocol":6},"packets":-1,"bytes":1},` +
		`{"policy_id":0,"flow":{"src_ip":"fe80::1%eth0","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"protocol":6},"packets":1}]}`
	got, err := DecodeBatch(strings.NewReader(body), 10)
	var errs ValidationErrors
	if !errors.As(err, &errs) {
		t.Fatalf("DecodeBatch = %v, want ValidationErrors", err)
	}
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
	}
	want := []string{"reports[0].flow.dst_port", "reports[0].packets", "reports[1].policy_id", "reports[1].flow.src_ip", "reports[1].bytes"}
	if strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Errorf("fields = %q, want %q", fields, want)
	}
	if len(got) != 2 {
		t.Errorf("got %d reports beside the value errors, want both", len(got))
	}

	many := `{"reports":[` + strings.TrimSuffix(strings.Repeat(`{"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"protocol":6},"packets":-1,"bytes":-1},`, 200), ",") + `]}`
	_, err = DecodeBatch(strings.NewReader(many), 1000)
	if !errors.As(err, &errs) || len(errs) != MaxValidationErrors {
		t.Errorf("a batch with 400 bad values gave %d errors, want %d", len(errs), MaxValidationErrors)
	}
}
