// Package tag names every current data element of the PS3.6 data dictionary
// by its keyword (tag.PatientName, tag.StudyInstanceUID, ...). It is
// generated with the dictionary; see package dicom.
package tag
