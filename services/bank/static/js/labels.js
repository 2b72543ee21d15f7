// Words a person reads instead of the API's codes.

export const SECTORS = {
  general_practice: "General practice",
  community_pharmacy: "Community pharmacy",
  dentistry: "Dentistry",
  optometry: "Optometry",
  community_nursing: "Community nursing",
};

export const SKILLS = {
  independent_prescriber: "Independent prescriber",
  minor_illness: "Minor illness",
  cervical_screening: "Cervical screening",
  childhood_immunisations: "Childhood immunisations",
  long_term_conditions: "Long-term conditions",
  travel_health: "Travel health",
  wound_care: "Wound care",
  medication_review: "Medication review",
  minor_surgery: "Minor surgery",
  contact_lens: "Contact lens",
};

export const REGISTER_NAMES = {
  GMC: "General Medical Council (GMC)",
  NMC: "Nursing and Midwifery Council (NMC)",
  GPhC: "General Pharmaceutical Council (GPhC)",
  GDC: "General Dental Council (GDC)",
  GOC: "General Optical Council (GOC)",
  HCPC: "Health and Care Professions Council (HCPC)",
};

/** "clinical_pharmacist" → "Clinical pharmacist". */
export function words(code) {
  if (!code) return "";
  const text = String(code).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function sector(code) {
  return SECTORS[code] ?? words(code);
}

const pounds = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP" });

/** "£55.00 an hour", or a plain statement when the organisation gave no rate. */
export function pay(pencePerHour) {
  if (pencePerHour == null) return "Rate not stated";
  return `${pounds.format(pencePerHour / 100)} an hour`;
}

/** "3.4 km". */
export function distance(km) {
  if (km == null) return "Distance not known";
  return `${Number(km).toLocaleString("en-GB", { maximumFractionDigits: 1 })} km`;
}
