// Times in Europe/London, whatever the phone's own time zone is set to.

export const TZ = "Europe/London";
const HOUR = 3_600_000;
const MINUTE = 60_000;

const partsFormat = new Intl.DateTimeFormat("en-GB", {
  timeZone: TZ,
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

/** The London wall-clock parts of an instant. */
export function londonParts(instant) {
  const out = {};
  for (const part of partsFormat.formatToParts(instant)) out[part.type] = part.value;
  return {
    y: Number(out.year),
    m: Number(out.month),
    d: Number(out.day),
    hh: Number(out.hour),
    mm: Number(out.minute),
    ss: Number(out.second),
  };
}

const pad = (n) => String(n).padStart(2, "0");

/** "YYYY-MM-DD": the London date of an instant. */
export function londonDate(instant) {
  const p = londonParts(instant);
  return `${p.y}-${pad(p.m)}-${pad(p.d)}`;
}

/** "HH:MM" in London. */
export function londonTime(instant) {
  const p = londonParts(instant);
  return `${pad(p.hh)}:${pad(p.mm)}`;
}

/** The instant at which London's clocks show `date` ("YYYY-MM-DD") and `time` ("HH:MM"). */
export function fromLondon(date, time) {
  const [y, m, d] = date.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  const wanted = Date.UTC(y, m - 1, d, hh, mm);
  let guess = wanted;
  // Two corrections settle any offset; a time the clocks skip lands an hour later.
  for (let i = 0; i < 3; i += 1) {
    const p = londonParts(new Date(guess));
    const shown = Date.UTC(p.y, p.m - 1, p.d, p.hh, p.mm);
    if (shown === wanted) break;
    guess -= shown - wanted;
  }
  return new Date(guess);
}

/** The date `days` after a "YYYY-MM-DD" date. */
export function addDays(date, days) {
  const [y, m, d] = date.split("-").map(Number);
  const t = new Date(Date.UTC(y, m - 1, d + days));
  return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}`;
}

/** 0 is Monday … 6 is Sunday, as the API counts weekdays. */
export function weekdayOf(date) {
  const [y, m, d] = date.split("-").map(Number);
  return (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;
}

export const WEEKDAYS = [
  "Monday",
  "Tuesday",
  "Wednesday",
  "Thursday",
  "Friday",
  "Saturday",
  "Sunday",
];

const dayFormat = new Intl.DateTimeFormat("en-GB", {
  timeZone: "UTC",
  weekday: "short",
  day: "numeric",
  month: "short",
});
const longDayFormat = new Intl.DateTimeFormat("en-GB", {
  timeZone: "UTC",
  weekday: "long",
  day: "numeric",
  month: "long",
});

function dateAsUtc(date) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

/** "Tue 24 Nov" for a "YYYY-MM-DD" date. */
export function shortDay(date) {
  return dayFormat.format(dateAsUtc(date));
}

/** "Tuesday 24 November" for a "YYYY-MM-DD" date. */
export function longDay(date) {
  return longDayFormat.format(dateAsUtc(date));
}

/** "Today", "Tomorrow" or "Tue 24 Nov". */
export function relativeDay(date, today = londonDate(new Date())) {
  if (date === today) return "Today";
  if (date === addDays(today, 1)) return "Tomorrow";
  return shortDay(date);
}

/** "Tue 24 Nov, 09:00–13:00", or both days when it runs past midnight. */
export function range(startIso, endIso) {
  const start = new Date(startIso);
  const end = new Date(endIso);
  const day = londonDate(start);
  const endDay = londonDate(end);
  if (day === endDay) return `${shortDay(day)}, ${londonTime(start)}–${londonTime(end)}`;
  return `${shortDay(day)} ${londonTime(start)} – ${shortDay(endDay)} ${londonTime(end)}`;
}

/** "4 h", "4 h 10 min", "45 min". */
export function duration(ms) {
  const minutes = Math.round(ms / MINUTE);
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  if (h && m) return `${h} h ${m} min`;
  if (h) return `${h} h`;
  return `${m} min`;
}

/** Time left, coarse when there is plenty and to the second near the end. */
export function countdown(ms) {
  if (ms <= 0) return "expired";
  if (ms >= HOUR) return duration(Math.floor(ms / MINUTE) * MINUTE);
  const m = Math.floor(ms / MINUTE);
  const s = Math.floor((ms % MINUTE) / 1000);
  if (m >= 10) return `${m} min`;
  return m ? `${m} min ${s} s` : `${s} s`;
}

/** Whether a booking starting at `startIso` is within the 48 hours that make a cancellation late. */
export function isLate(startIso, now = Date.now()) {
  return new Date(startIso).getTime() - now < 48 * HOUR;
}
