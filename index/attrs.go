package index

import (
	"fmt"
	"strings"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
)

// Level is a query/retrieve level (PS3.4 C.6).
type Level int

// Query/retrieve levels, from the top of the hierarchy down.
const (
	Patient Level = iota
	Study
	Series
	Instance
)

// String returns the level's Query/Retrieve Level (0008,0052) value.
func (l Level) String() string {
	switch l {
	case Patient:
		return "PATIENT"
	case Study:
		return "STUDY"
	case Series:
		return "SERIES"
	case Instance:
		return "IMAGE"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// ParseLevel parses a Query/Retrieve Level value.
func ParseLevel(s string) (Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "PATIENT":
		return Patient, nil
	case "STUDY":
		return Study, nil
	case "SERIES":
		return Series, nil
	case "IMAGE", "INSTANCE":
		return Instance, nil
	}
	return 0, fmt.Errorf("index: unknown query/retrieve level %q", s)
}

// kind says how an attribute is stored and matched.
type kind int

const (
	kString     kind = iota // exact or wildcard, case-sensitive
	kUID                    // exact or UID list
	kPN                     // person name: case-insensitive, wildcard, fuzzy
	kDate                   // DA: exact or range on a date column
	kTime                   // TM: exact or range on a time column
	kInt                    // IS/US stored as integer: exact
	kModalities             // text[]: any of the values
	kCount                  // computed count: return only
)

// attr maps an attribute to its column. col holds the value as received
// (or an integer); typed holds the column matched for dates and times, and
// for names the prefix of the _norm/_family/_given/_middle columns.
type attr struct {
	tag   dicom.Tag
	vr    dicom.VR
	level Level
	kind  kind
	col   string
	typed string
}

// attrs lists every attribute the index stores, by level.
var attrs = []attr{
	{tag.PatientName, dicom.PN, Patient, kPN, "patient_name", "patient_name"},
	{tag.PatientID, dicom.LO, Patient, kString, "patient_id", ""},
	{tag.IssuerOfPatientID, dicom.LO, Patient, kString, "issuer_of_patient_id", ""},
	{tag.PatientBirthDate, dicom.DA, Patient, kDate, "patient_birth_date_raw", "patient_birth_date"},
	{tag.PatientSex, dicom.CS, Patient, kString, "patient_sex", ""},
	{tag.NumberOfPatientRelatedStudies, dicom.IS, Patient, kCount, "", ""},

	{tag.StudyInstanceUID, dicom.UI, Study, kUID, "study_instance_uid", ""},
	{tag.StudyDate, dicom.DA, Study, kDate, "study_date_raw", "study_date"},
	{tag.StudyTime, dicom.TM, Study, kTime, "study_time_raw", "study_time"},
	{tag.AccessionNumber, dicom.SH, Study, kString, "accession_number", ""},
	{tag.ReferringPhysicianName, dicom.PN, Study, kPN, "referring_physician_name", "referring_physician_name"},
	{tag.StudyID, dicom.SH, Study, kString, "study_id", ""},
	{tag.StudyDescription, dicom.LO, Study, kString, "study_description", ""},
	{tag.ModalitiesInStudy, dicom.CS, Study, kModalities, "modalities_in_study", ""},
	{tag.NumberOfStudyRelatedSeries, dicom.IS, Study, kCount, "number_of_series", ""},
	{tag.NumberOfStudyRelatedInstances, dicom.IS, Study, kCount, "number_of_instances", ""},

	{tag.SeriesInstanceUID, dicom.UI, Series, kUID, "series_instance_uid", ""},
	{tag.Modality, dicom.CS, Series, kString, "modality", ""},
	{tag.SeriesNumber, dicom.IS, Series, kInt, "series_number", ""},
	{tag.SeriesDescription, dicom.LO, Series, kString, "series_description", ""},
	{tag.PerformedProcedureStepStartDate, dicom.DA, Series, kDate, "pps_start_date_raw", "pps_start_date"},
	{tag.PerformedProcedureStepStartTime, dicom.TM, Series, kTime, "pps_start_time_raw", "pps_start_time"},
	{tag.NumberOfSeriesRelatedInstances, dicom.IS, Series, kCount, "number_of_instances", ""},

	{tag.SOPInstanceUID, dicom.UI, Instance, kUID, "sop_instance_uid", ""},
	{tag.SOPClassUID, dicom.UI, Instance, kUID, "sop_class_uid", ""},
	{tag.InstanceNumber, dicom.IS, Instance, kInt, "instance_number", ""},
	{tag.Rows, dicom.US, Instance, kInt, "rows", ""},
	{tag.Columns, dicom.US, Instance, kInt, "columns", ""},
	{tag.BitsAllocated, dicom.US, Instance, kInt, "bits_allocated", ""},
	{tag.NumberOfFrames, dicom.IS, Instance, kInt, "number_of_frames", ""},
	{tag.AvailableTransferSyntaxUID, dicom.UI, Instance, kUID, "transfer_syntax_uid", ""},
	{tag.TransferSyntaxUID, dicom.UI, Instance, kUID, "transfer_syntax_uid", ""},
}

var attrByTag = func() map[dicom.Tag]*attr {
	m := make(map[dicom.Tag]*attr, len(attrs))
	for i := range attrs {
		m[attrs[i].tag] = &attrs[i]
	}
	return m
}()

// Supported reports whether the index can match on or return t.
func Supported(t dicom.Tag) bool { return attrByTag[t] != nil }

// defaultFields are the attributes returned at each level without being
// asked for: PS3.18 Tables 10.6.3-3 to -5 (those the index holds) and, for
// the patient level, PS3.4 C.6.1.1.2.
var defaultFields = map[Level][]dicom.Tag{
	Patient: {tag.PatientName, tag.PatientID, tag.IssuerOfPatientID, tag.PatientBirthDate, tag.PatientSex, tag.NumberOfPatientRelatedStudies},
	Study: {tag.StudyDate, tag.StudyTime, tag.AccessionNumber, tag.ModalitiesInStudy, tag.ReferringPhysicianName,
		tag.PatientName, tag.PatientID, tag.PatientBirthDate, tag.PatientSex, tag.StudyInstanceUID, tag.StudyID,
		tag.StudyDescription, tag.NumberOfStudyRelatedSeries, tag.NumberOfStudyRelatedInstances},
	Series: {tag.Modality, tag.SeriesInstanceUID, tag.SeriesNumber, tag.SeriesDescription,
		tag.PerformedProcedureStepStartDate, tag.PerformedProcedureStepStartTime, tag.NumberOfSeriesRelatedInstances},
	Instance: {tag.SOPClassUID, tag.SOPInstanceUID, tag.InstanceNumber, tag.Rows, tag.Columns,
		tag.BitsAllocated, tag.NumberOfFrames, tag.AvailableTransferSyntaxUID},
}

// DefaultFields returns the attributes Find returns at level unless
// Query.OnlyRequested is set.
func DefaultFields(level Level) []dicom.Tag { return append([]dicom.Tag(nil), defaultFields[level]...) }

// alias is the SQL alias of the table holding attributes of level l when
// querying at level q: patient attributes are copied onto studies.
func alias(l, q Level) string {
	switch l {
	case Patient:
		if q == Patient {
			return "p"
		}
		return "s"
	case Study:
		return "s"
	case Series:
		return "se"
	}
	return "i"
}

// selectExpr returns the SQL expression giving a's value as text at query
// level q.
func (a *attr) selectExpr(q Level) string {
	al := alias(a.level, q)
	switch a.kind {
	case kInt, kCount:
		if a.tag == tag.NumberOfPatientRelatedStudies {
			return "(SELECT count(*) FROM studies x WHERE x.patient_pk = p.pk)::text"
		}
		return al + "." + a.col + "::text"
	case kModalities:
		return "array_to_string(" + al + "." + a.col + ", '\\')"
	}
	return al + "." + a.col
}
