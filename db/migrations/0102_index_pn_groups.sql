-- Person names match on every component group (package index): besides
-- the normalised first non-empty group (*_norm), the ideographic and
-- phonetic groups are kept normalised the same way, so that a name stored
-- as "Yamada^Tarou=山田^太郎=やまだ^たろう" matches "山田^太郎" and "やまだ*".
ALTER TABLE patients
    ADD COLUMN patient_name_ideo text NOT NULL DEFAULT '',
    ADD COLUMN patient_name_phon text NOT NULL DEFAULT '';
ALTER TABLE studies
    ADD COLUMN patient_name_ideo text NOT NULL DEFAULT '',
    ADD COLUMN patient_name_phon text NOT NULL DEFAULT '',
    ADD COLUMN referring_physician_name_ideo text NOT NULL DEFAULT '',
    ADD COLUMN referring_physician_name_phon text NOT NULL DEFAULT '';
CREATE INDEX patients_name_ideo ON patients (patient_name_ideo text_pattern_ops);
CREATE INDEX patients_name_phon ON patients (patient_name_phon text_pattern_ops);
CREATE INDEX studies_patient_name_ideo ON studies (patient_name_ideo text_pattern_ops);
CREATE INDEX studies_patient_name_phon ON studies (patient_name_phon text_pattern_ops);
