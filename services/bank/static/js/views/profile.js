// Profile: what the bank holds about you, what you may change, and signing out.

import { ApiError, api, splitErrors } from "../api.js";
import { field, formMessage, h, replace, uid } from "../dom.js";
import { REGISTER_NAMES, SECTORS, SKILLS, words } from "../labels.js";

const TEXT_FIELDS = ["email", "phone", "register_number", "home_organisation"];
const NUMBER_FIELDS = ["latitude", "longitude", "travel_km"];
const FIELDS = [
  ...TEXT_FIELDS,
  ...NUMBER_FIELDS,
  "register",
  "home_sector",
  "skills",
  "wtr_opt_out",
  "self_employed",
];

export function render(main, ctx) {
  let me = ctx.me;
  let alive = true;
  let edited = false;
  const message = formMessage();
  const saved = h("p", { class: "saved-note", hidden: true });

  const email = field({
    name: "email",
    label: "E-mail",
    type: "email",
    attrs: { autocomplete: "email", inputmode: "email", spellcheck: "false" },
  });
  const phone = field({
    name: "phone",
    label: "Mobile phone",
    type: "tel",
    hint: "Digits only, e.g. 07700 900123.",
    attrs: { autocomplete: "tel" },
  });
  const registerSelect = h("select", {});
  const register = field({ name: "register", label: "Regulator", control: registerSelect });
  const registerNumber = field({
    name: "register_number",
    label: "Registration number",
    hint: "As it appears on your regulator’s register.",
    attrs: { autocapitalize: "characters", spellcheck: "false", maxlength: "20" },
  });
  const sectorSelect = h(
    "select",
    {},
    Object.entries(SECTORS).map(([value, label]) => h("option", { value }, label)),
  );
  const homeSector = field({
    name: "home_sector",
    label: "Home sector",
    control: sectorSelect,
    hint: "Where you normally work. Changing it (or your employer) tells your ICB you’ve moved.",
  });
  const homeOrganisation = field({
    name: "home_organisation",
    label: "Employer’s ODS code (optional)",
    hint: "e.g. A81001 for a practice, FVR79 for a pharmacy.",
    attrs: { autocapitalize: "characters", spellcheck: "false", maxlength: "8" },
  });
  const skillBoxes = Object.entries(SKILLS).map(([value, label]) => {
    const id = uid("skill");
    const input = h("input", { type: "checkbox", id, name: "skills", value });
    return { value, input, el: h("div", { class: "check" }, input, h("label", { for: id }, label)) };
  });
  const skillsError = h("p", { class: "field-error", id: uid("skills-error"), hidden: true });
  const latitude = field({
    name: "latitude",
    label: "Latitude",
    type: "number",
    attrs: { step: "any", min: "49", max: "61", inputmode: "decimal" },
  });
  const longitude = field({
    name: "longitude",
    label: "Longitude",
    type: "number",
    attrs: { step: "any", min: "-9", max: "2", inputmode: "decimal" },
  });
  const travel = field({
    name: "travel_km",
    label: "How far you’ll travel (km)",
    type: "number",
    hint: "Straight-line distance from your base, up to 200 km.",
    attrs: { step: "any", min: "1", max: "200", inputmode: "decimal" },
  });
  const locate = h("button", { type: "button", class: "secondary", onclick: useLocation }, "Use my current location");
  const locateNote = h("p", { class: "hint", "aria-live": "polite" });
  const wtr = checkbox(
    "wtr_opt_out",
    "I have opted out of the 48-hour working week",
    "Only if you have signed an opt-out under the Working Time Regulations.",
  );
  const selfEmployed = checkbox("self_employed", "I’m self-employed", "");
  const button = h("button", { type: "submit", class: "primary wide" }, "Save changes");
  const fields = {
    email,
    phone,
    register,
    register_number: registerNumber,
    home_sector: homeSector,
    home_organisation: homeOrganisation,
    latitude,
    longitude,
    travel_km: travel,
  };
  const summary = h("dl", { class: "summary" });

  function checkbox(name, label, hint) {
    const id = uid(name);
    const hintId = hint ? `${id}-hint` : null;
    const input = h("input", { type: "checkbox", id, name, "aria-describedby": hintId });
    return {
      input,
      el: h(
        "div",
        { class: "check" },
        input,
        h("label", { for: id }, label, hint ? h("span", { class: "hint", id: hintId }, hint) : null),
      ),
    };
  }

  function fill() {
    summary.replaceChildren(
      ...[
        ["Name", me.display_name],
        ["Profession", words(me.profession)],
        ["Region", me.region],
        ["Works as", words(me.employment)],
        ["Late cancellations", String(me.late_cancellations)],
      ].map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))),
    );
    email.input.value = me.email ?? "";
    phone.input.value = me.phone ?? "";
    const choices = me.register_choices ?? [];
    replace(
      registerSelect,
      me.register ? null : h("option", { value: "" }, "Choose your regulator"),
      choices.map((value) => h("option", { value, selected: value === me.register }, REGISTER_NAMES[value] ?? value)),
    );
    registerNumber.input.value = me.register_number ?? "";
    sectorSelect.value = me.home_sector;
    homeOrganisation.input.value = me.home_organisation ?? "";
    const held = new Set(me.skills ?? []);
    // Only the skills this profession can hold are offered (the server refuses others).
    const allowed = new Set(me.skill_choices ?? Object.keys(SKILLS));
    for (const box of skillBoxes) {
      box.input.checked = held.has(box.value);
      box.el.hidden = !allowed.has(box.value) && !held.has(box.value);
    }
    latitude.input.value = me.latitude ?? "";
    longitude.input.value = me.longitude ?? "";
    travel.input.value = me.travel_km ?? "";
    wtr.input.checked = Boolean(me.wtr_opt_out);
    selfEmployed.input.checked = Boolean(me.self_employed);
  }

  /** Only what changed, in the API's terms; errors for what can't be sent. */
  function changes() {
    const out = {};
    const problems = {};
    for (const name of TEXT_FIELDS) {
      let value = fields[name].input.value.trim();
      if (name === "register_number" || name === "home_organisation") value = value.toUpperCase();
      const before = me[name] ?? "";
      if (value === before) continue;
      if (!value) {
        problems[name] = "This can’t be left empty once it is set: enter a new one instead.";
        continue;
      }
      out[name] = value;
    }
    if (out.email && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(out.email)) {
      problems.email = "Enter an e-mail address like name@example.nhs.uk.";
    }
    if (out.phone && !/^\+?[0-9 ]{10,15}$/.test(out.phone)) {
      problems.phone = "Enter 10 to 15 digits (spaces allowed), e.g. 07700 900123.";
    }
    if (out.home_organisation && !/^[A-Z][A-Z0-9]{2,7}$/.test(out.home_organisation)) {
      problems.home_organisation = "Enter an ODS code: a letter then 2 to 7 letters or digits, e.g. A81001.";
    }
    for (const name of NUMBER_FIELDS) {
      const raw = fields[name].input.value.trim();
      if (raw === "" && me[name] == null) continue;
      const value = Number(raw);
      if (raw === "" || Number.isNaN(value)) {
        problems[name] = "Enter a number.";
        continue;
      }
      if (value !== me[name]) out[name] = value;
    }
    if ("latitude" in out && (out.latitude < 49 || out.latitude > 61)) {
      problems.latitude = "Your base must be in the UK: latitude between 49 and 61.";
    }
    if ("longitude" in out && (out.longitude < -9 || out.longitude > 2)) {
      problems.longitude = "Your base must be in the UK: longitude between −9 and 2.";
    }
    if ("travel_km" in out && (out.travel_km <= 0 || out.travel_km > 200)) {
      problems.travel_km = "Enter a distance from 1 to 200 km.";
    }
    if (registerSelect.value && registerSelect.value !== (me.register ?? "")) out.register = registerSelect.value;
    if (sectorSelect.value !== me.home_sector) out.home_sector = sectorSelect.value;
    const skills = skillBoxes.filter((b) => b.input.checked).map((b) => b.value).sort();
    if (skills.join() !== [...(me.skills ?? [])].sort().join()) out.skills = skills;
    if (wtr.input.checked !== Boolean(me.wtr_opt_out)) out.wtr_opt_out = wtr.input.checked;
    if (selfEmployed.input.checked !== Boolean(me.self_employed)) out.self_employed = selfEmployed.input.checked;
    return { out, problems };
  }

  function clearErrors() {
    for (const f of Object.values(fields)) f.setError(null);
    skillsError.hidden = true;
    message.clear();
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    saved.hidden = true;
    const { out, problems } = changes();
    for (const [name, text] of Object.entries(problems)) fields[name].setError(text);
    if (Object.keys(problems).length) {
      form.querySelector("[aria-invalid=true]")?.focus();
      return;
    }
    if (!Object.keys(out).length) {
      ctx.toast("Nothing has changed.");
      return;
    }
    button.disabled = true;
    try {
      me = await api("/api/me", { method: "PATCH", body: out });
      ctx.setMe(me);
      fill();
      saved.textContent = "Your changes are saved.";
      saved.hidden = false;
      ctx.toast("Profile saved.");
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const { byField, other } = splitErrors(error, FIELDS);
      for (const [name, text] of Object.entries(byField)) {
        if (name === "skills") {
          skillsError.textContent = text;
          skillsError.hidden = false;
        } else if (fields[name]) {
          fields[name].setError(friendly(name, text));
        }
      }
      if (other.length || !Object.keys(byField).length) message.show(error.explanation, other);
      else form.querySelector("[aria-invalid=true]")?.focus();
    } finally {
      button.disabled = false;
    }
  }

  function useLocation() {
    if (!navigator.geolocation) {
      locateNote.textContent = "This phone can’t share its location; type the numbers instead.";
      return;
    }
    locateNote.textContent = "Finding your location…";
    navigator.geolocation.getCurrentPosition(
      (position) => {
        latitude.input.value = position.coords.latitude.toFixed(3);
        longitude.input.value = position.coords.longitude.toFixed(3);
        locateNote.textContent = "Location filled in. Save to keep it.";
      },
      () => {
        locateNote.textContent = "Couldn’t get your location; type the numbers instead.";
      },
      { enableHighAccuracy: false, timeout: 10000 },
    );
  }

  const form = h(
    "form",
    { novalidate: true, onsubmit: submit, class: "profile-form" },
    message.el,
    h("fieldset", {}, h("legend", {}, "Contact"), email.el, phone.el),
    h("fieldset", {}, h("legend", {}, "Registration"), register.el, registerNumber.el),
    h(
      "fieldset",
      {},
      h("legend", {}, "Work"),
      homeSector.el,
      homeOrganisation.el,
      h(
        "fieldset",
        { class: "skills", "aria-describedby": skillsError.id },
        h("legend", {}, "Skills"),
        h("div", { class: "checks" }, skillBoxes.map((b) => b.el)),
        skillsError,
      ),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Where you’ll work"),
      h("p", { class: "hint" }, "Your base is used only to work out distances; offers never show it."),
      h("div", { class: "row" }, latitude.el, longitude.el),
      locate,
      locateNote,
      travel.el,
    ),
    h("fieldset", {}, h("legend", {}, "Working time"), wtr.el, selfEmployed.el),
    saved,
    button,
  );

  replace(
    main,
    h("h1", { tabindex: "-1" }, "Profile"),
    h("section", { class: "panel", "aria-label": "About you" }, summary),
    form,
    h(
      "section",
      { class: "panel signout", "aria-labelledby": "signout-title" },
      h("h2", { id: "signout-title" }, "Sign out"),
      h("p", { class: "hint" }, "Signing out also removes the bookings saved on this phone."),
      h("button", { type: "button", class: "secondary wide", onclick: () => ctx.signOut() }, "Sign out"),
    ),
  );
  fill();
  form.addEventListener("input", () => {
    edited = true;
    saved.hidden = true;
  });

  // Fresh from the server, in case it changed elsewhere.
  api("/api/me")
    .then((fresh) => {
      if (!alive || !fresh || edited) return;
      me = fresh;
      ctx.setMe(fresh);
      fill();
    })
    .catch(() => {});
  return () => {
    alive = false;
  };
}

/** The API's rule, put as a person would say it where we know a better wording. */
function friendly(name, text) {
  if (name === "register_number") return `Check the number: ${text}.`;
  if (/pattern/i.test(text)) {
    if (name === "email") return "Enter an e-mail address like name@example.nhs.uk.";
    if (name === "phone") return "Enter 10 to 15 digits (spaces allowed), e.g. 07700 900123.";
    if (name === "home_organisation") return "Enter an ODS code, e.g. A81001.";
  }
  return text;
}
