package smartcard

// Profession and institution OIDs of the TI (gemSpec_OID Tab_PKI_402 and
// Tab_PKI_403; DOMAIN.md §3.4, §3.5), German and English display names.
// Unknown OIDs are passed on without a display name.
var professionNames = map[string][2]string{
	"1.2.276.0.76.4.30":  {"Ärztin/Arzt", "Physician"},
	"1.2.276.0.76.4.31":  {"Zahnärztin/Zahnarzt", "Dentist"},
	"1.2.276.0.76.4.32":  {"Apotheker/-in", "Pharmacist"},
	"1.2.276.0.76.4.33":  {"Apothekerassistent/-in", "Pharmacist's assistant"},
	"1.2.276.0.76.4.34":  {"Pharmazieingenieur/-in", "Pharmacy engineer"},
	"1.2.276.0.76.4.35":  {"pharmazeutisch-technische/-r Assistent/-in", "Pharmaceutical-technical assistant"},
	"1.2.276.0.76.4.36":  {"pharmazeutisch-kaufmännische/-r Angestellte", "Pharmaceutical-commercial employee"},
	"1.2.276.0.76.4.45":  {"Psychotherapeut/-in", "Psychotherapist"},
	"1.2.276.0.76.4.46":  {"Psychologische/-r Psychotherapeut/-in", "Psychological psychotherapist"},
	"1.2.276.0.76.4.47":  {"Kinder- und Jugendlichenpsychotherapeut/-in", "Child and adolescent psychotherapist"},
	"1.2.276.0.76.4.48":  {"Rettungsassistent/-in", "Paramedic assistant"},
	"1.2.276.0.76.4.49":  {"Versicherte/-r", "Insured person"},
	"1.2.276.0.76.4.178": {"Notfallsanitäter/-in", "Paramedic"},
	"1.2.276.0.76.4.232": {"Gesundheits- und (Kinder-)Krankenpfleger/-in", "Nurse"},
	"1.2.276.0.76.4.233": {"Altenpfleger/-in", "Geriatric nurse"},
	"1.2.276.0.76.4.234": {"Pflegefachfrau/-mann", "Registered nurse"},
	"1.2.276.0.76.4.235": {"Hebamme", "Midwife"},
	"1.2.276.0.76.4.236": {"Physiotherapeut/-in", "Physiotherapist"},
	"1.2.276.0.76.4.237": {"Augenoptiker/-in", "Optician"},
	"1.2.276.0.76.4.238": {"Hörakustiker/-in", "Hearing aid acoustician"},
	"1.2.276.0.76.4.241": {"Zahntechniker/-in", "Dental technician"},
	"1.2.276.0.76.4.274": {"Ergotherapeut/-in", "Occupational therapist"},
	"1.2.276.0.76.4.275": {"Logopäde/-in", "Speech therapist"},
	"1.2.276.0.76.4.276": {"Podologe/-in", "Podiatrist"},
	"1.2.276.0.76.4.50":  {"Betriebsstätte Arzt", "Medical practice"},
	"1.2.276.0.76.4.51":  {"Zahnarztpraxis", "Dental practice"},
	"1.2.276.0.76.4.52":  {"Betriebsstätte Psychotherapeut", "Psychotherapy practice"},
	"1.2.276.0.76.4.53":  {"Krankenhaus", "Hospital"},
	"1.2.276.0.76.4.54":  {"Öffentliche Apotheke", "Public pharmacy"},
	"1.2.276.0.76.4.55":  {"Krankenhausapotheke", "Hospital pharmacy"},
	"1.2.276.0.76.4.56":  {"Bundeswehrapotheke", "Armed forces pharmacy"},
	"1.2.276.0.76.4.57":  {"Mobile Einrichtung Rettungsdienst", "Mobile emergency service"},
	"1.2.276.0.76.4.58":  {"Betriebsstätte gematik", "gematik"},
	"1.2.276.0.76.4.59":  {"Betriebsstätte Kostenträger", "Health insurer"},
	"1.2.276.0.76.4.245": {"Betriebsstätte Pflege", "Care facility"},
	"1.2.276.0.76.4.246": {"Betriebsstätte Geburtshilfe", "Obstetrics facility"},
	"1.2.276.0.76.4.247": {"Betriebsstätte Physiotherapie", "Physiotherapy practice"},
	"1.2.276.0.76.4.253": {"Rettungsleitstelle", "Emergency control centre"},
	"1.2.276.0.76.4.255": {"Öffentlicher Gesundheitsdienst", "Public health service"},
	"1.2.276.0.76.4.256": {"Arbeitsmedizin", "Occupational medicine"},
	"1.2.276.0.76.4.257": {"Vorsorge- und Rehabilitation", "Prevention and rehabilitation"},
}

// ProfessionName returns the display name of a profession or institution
// OID in lang ("de" or "en"), or "" when the OID is not in the table.
func ProfessionName(oid, lang string) string {
	n, ok := professionNames[oid]
	if !ok {
		return ""
	}
	if lang == "en" {
		return n[1]
	}
	return n[0]
}
