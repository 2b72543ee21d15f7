// My week: the next seven days with the time offered, adding and taking back time,
// and weekly patterns.

import { ApiError, api, splitErrors } from "../api.js";
import { confirmDialog, field, formMessage, h, openDialog, replace, uid } from "../dom.js";
import {
  WEEKDAYS,
  addDays,
  fromLondon,
  londonDate,
  londonTime,
  longDay,
  relativeDay,
  shortDay,
  weekdayOf,
} from "../time.js";
import { explainConflict } from "./cancel.js";

export function render(main, ctx) {
  let alive = true;
  const today = londonDate(new Date());
  const days = Array.from({ length: 7 }, (_, i) => addDays(today, i));

  const status = h("p", { class: "notice", hidden: true, "data-testid": "saved-note" });
  const calendar = h("div", { class: "days", "aria-busy": "true" }, h("p", { class: "loading" }, "Loading your week…"));
  const patternList = h("div", { class: "patterns" });
  const addForm = windowForm();
  const patternForm = patternFormBuilder();

  replace(
    main,
    h("h1", { tabindex: "-1" }, "My week"),
    h("p", { class: "lede" }, "The time you’re free to work. Offers only come for this time. All times are UK time."),
    status,
    h(
      "section",
      { class: "panel", "aria-labelledby": "add-time-title" },
      h("h2", { id: "add-time-title" }, "Add time"),
      addForm.el,
    ),
    h(
      "section",
      { "aria-labelledby": "next7-title" },
      h(
        "div",
        { class: "section-head" },
        h("h2", { id: "next7-title" }, "Next 7 days"),
        h(
          "p",
          { class: "legend", "aria-hidden": "true" },
          h("i", { class: "swatch free" }),
          "Free",
          h("i", { class: "swatch booked" }),
          "Booked",
        ),
      ),
      calendar,
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "patterns-title" },
      h("h2", { id: "patterns-title" }, "Every week"),
      h("p", { class: "hint" }, "A weekly pattern offers the same hours every week, eight weeks ahead."),
      patternList,
      h("details", { class: "add-pattern" }, h("summary", {}, "Add a weekly pattern"), patternForm.el),
    ),
  );

  async function load() {
    const from = fromLondon(today, "00:00").toISOString();
    const to = fromLondon(addDays(today, 7), "00:00").toISOString();
    const query = new URLSearchParams({ from, to });
    try {
      const [windows, booked, patterns] = await Promise.all([
        api(`/api/availability?${query}`, { meta: true }),
        api("/api/bookings?when=upcoming", { meta: true }).catch(() => ({ data: [], savedAt: null })),
        api("/api/availability/patterns", { meta: true }).catch(() => ({ data: [], savedAt: null })),
      ]);
      if (!alive) return;
      status.hidden = !windows.savedAt;
      if (windows.savedAt) {
        status.textContent = `Offline: showing your week as this phone last saw it (${londonTime(windows.savedAt)}).`;
      }
      drawDays(windows.data ?? [], booked.data ?? [], patterns.data ?? []);
      drawPatterns(patterns.data ?? []);
    } catch (error) {
      if (!alive) return;
      calendar.removeAttribute("aria-busy");
      replace(calendar, h("p", { class: "problem" }, error.explanation ?? String(error)));
    }
  }

  function drawDays(windows, bookings, patterns) {
    calendar.removeAttribute("aria-busy");
    const byPattern = Object.fromEntries(patterns.map((p) => [p.pattern_id, p]));
    replace(
      calendar,
      days.map((day) => dayCard(day, windows, bookings, byPattern)),
    );
  }

  function dayCard(day, windows, bookings, byPattern) {
    const dayStart = fromLondon(day, "00:00").getTime();
    const dayEnd = fromLondon(addDays(day, 1), "00:00").getTime();
    const length = dayEnd - dayStart; // 23 or 25 hours when the clocks change
    const clip = (item) => {
      const s = Math.max(new Date(item.starts_at).getTime(), dayStart);
      const e = Math.min(new Date(item.ends_at).getTime(), dayEnd);
      return e > s ? { s, e } : null;
    };
    const block = (span, cls, title) =>
      h("span", {
        class: `block ${cls}`,
        style: `left:${((span.s - dayStart) / length) * 100}%;width:${((span.e - span.s) / length) * 100}%`,
        title,
      });
    const dayWindows = windows.filter((w) => clip(w));
    const dayBookings = bookings.filter((b) => clip(b));
    const titleId = uid("day");
    const track = h(
      "div",
      { class: "track", "aria-hidden": "true" },
      [6, 12, 18].map((hour) => h("span", { class: "tick", style: `left:${(hour / 24) * 100}%` })),
      dayWindows.map((w) => block(clip(w), "free", "Free")),
      dayBookings.map((b) => block(clip(b), "booked", b.site_name)),
    );
    const list = h("ul", { class: "day-items" });
    for (const w of dayWindows) {
      const text = spanText(w, day);
      const pattern = w.pattern_id ? byPattern[w.pattern_id] : null;
      list.append(
        h(
          "li",
          { class: "window", "data-testid": "window" },
          h("span", { class: "item-text" }, h("span", { class: "time" }, text), pattern ? h("span", { class: "chip" }, "weekly") : null),
          h(
            "button",
            {
              type: "button",
              class: "link-button",
              "aria-label": `Remove ${text} on ${longDay(day)}`,
              onclick: () => removeWindow(w, day, text, pattern),
            },
            "Remove",
          ),
        ),
      );
    }
    for (const b of dayBookings) {
      list.append(
        h(
          "li",
          { class: "booking-item" },
          h(
            "span",
            { class: "item-text" },
            h("span", { class: "time" }, spanText(b, day)),
            ` ${b.status === "booked" ? "Booked" : "Accepted"}: ${b.site_name}`,
          ),
        ),
      );
    }
    if (!dayWindows.length && !dayBookings.length) {
      list.append(h("li", { class: "muted" }, "No time offered"));
    }
    return h(
      "section",
      { class: "day", "aria-labelledby": titleId, "data-date": day },
      h(
        "div",
        { class: "day-head" },
        h("h3", { id: titleId }, relativeDay(day, today), day === today || day === addDays(today, 1) ? h("span", { class: "day-date" }, ` · ${shortDay(day)}`) : null),
        h(
          "button",
          {
            type: "button",
            class: "link-button",
            "aria-label": `Add time on ${longDay(day)}`,
            onclick: () => addForm.startOn(day),
          },
          "+ Add",
        ),
      ),
      track,
      h("div", { class: "hours", "aria-hidden": "true" }, ["00", "06", "12", "18", "24"].map((t) => h("span", {}, t))),
      list,
    );
  }

  function spanText(item, day) {
    const s = new Date(item.starts_at);
    const e = new Date(item.ends_at);
    const sDay = londonDate(s);
    const eDay = londonDate(e);
    const from = sDay === day ? londonTime(s) : `${shortDay(sDay)} ${londonTime(s)}`;
    const to = eDay === day ? londonTime(e) : `${londonTime(e)} ${eDay === addDays(day, 1) ? "next day" : shortDay(eDay)}`;
    return `${from}–${to}`;
  }

  async function removeWindow(window, day, text, pattern) {
    if (pattern) {
      const go = await confirmDialog({
        title: `Skip ${longDay(day)}?`,
        body: [
          `${text} comes from your weekly pattern (every ${WEEKDAYS[pattern.weekday]}).`,
          "Only this date is taken out; the pattern carries on. Offers you haven’t answered for this time go to someone else.",
        ],
        confirm: "Skip this date",
        keep: "Keep it",
        danger: true,
      });
      if (!go) return;
      await takeBack(() =>
        api(`/api/availability/patterns/${pattern.pattern_id}/exceptions`, {
          method: "POST",
          body: { on_date: londonDate(new Date(window.starts_at)) },
        }),
      );
      return;
    }
    const go = await confirmDialog({
      title: "Remove this time?",
      body: [
        `${longDay(day)}, ${text}.`,
        "Offers you haven’t answered for this time go to someone else.",
      ],
      confirm: "Remove",
      keep: "Keep it",
      danger: true,
    });
    if (!go) return;
    await takeBack(() => api(`/api/availability/${window.availability_id}`, { method: "DELETE" }));
  }

  /** Run a request that takes time back; explain a 409 (a booking needs the time). */
  async function takeBack(request, done = "Time removed.") {
    try {
      await request();
      ctx.toast(done);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 409 && error.errors.some((e) => e.field === "booking")) {
        const cancelled = await explainConflict(error, {
          lateSoFar: ctx.me?.late_cancellations ?? null,
          toast: ctx.toast,
        });
        if (cancelled) {
          await refreshMe();
          ctx.toast("Booking cancelled. You can now remove the time.");
        }
      } else {
        ctx.toast(error.explanation, "error");
      }
    }
    await load();
  }

  async function refreshMe() {
    try {
      ctx.setMe(await api("/api/me"));
    } catch {
      // Kept as it was; only the late-cancellation count could be out of date.
    }
  }

  function windowForm() {
    const date = field({
      name: "date",
      label: "Date",
      type: "date",
      value: today,
      attrs: { min: today, required: true },
    });
    const from = field({ name: "from", label: "From", type: "time", value: "09:00", attrs: { required: true } });
    const to = field({ name: "to", label: "To", type: "time", value: "17:00", attrs: { required: true } });
    const summary = h("p", { class: "hint", id: uid("summary"), "aria-live": "polite" });
    const message = formMessage();
    const button = h("button", { type: "submit", class: "primary wide" }, "Add time");

    function describe() {
      const d = date.input.value;
      const f = from.input.value;
      const t = to.input.value;
      if (!d || !f || !t) {
        summary.textContent = "";
        return;
      }
      const overnight = t <= f;
      summary.textContent = overnight
        ? `${longDay(d)} ${f} to ${t} the next day (UK time).`
        : `${longDay(d)}, ${f} to ${t} (UK time).`;
    }
    for (const f of [date, from, to]) f.input.addEventListener("input", describe);
    describe();

    async function submit(event) {
      event.preventDefault();
      for (const f of [date, from, to]) f.setError(null);
      message.clear();
      const d = date.input.value;
      const f = from.input.value;
      const t = to.input.value;
      let bad = false;
      if (!d) {
        date.setError("Choose a date.");
        bad = true;
      } else if (d < today) {
        date.setError("Choose today or a later date.");
        bad = true;
      }
      if (!f) {
        from.setError("Enter a start time, e.g. 09:00.");
        bad = true;
      }
      if (!t) {
        to.setError("Enter an end time, e.g. 17:00.");
        bad = true;
      }
      if (!bad && t === f) {
        to.setError("The end time must differ from the start time.");
        bad = true;
      }
      if (bad) {
        form.querySelector("[aria-invalid=true]")?.focus();
        return;
      }
      const startsAt = fromLondon(d, f);
      const endsAt = fromLondon(t <= f ? addDays(d, 1) : d, t);
      if (endsAt.getTime() <= Date.now()) {
        to.setError("That time has already passed. Choose a later time.");
        to.input.focus();
        return;
      }
      button.disabled = true;
      try {
        await api("/api/availability", {
          method: "POST",
          body: { starts_at: startsAt.toISOString(), ends_at: endsAt.toISOString() },
        });
        ctx.toast(`Added ${shortDay(d)}, ${f}–${t}.`);
        await load();
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (error.status === 409) {
          from.setError("This overlaps time you’ve already offered. Remove that first, or choose other times.");
          from.input.focus();
        } else if (error.status === 422) {
          const { byField, other } = splitErrors(error, ["starts_at", "ends_at"]);
          if (byField.starts_at) from.setError(`Start: ${byField.starts_at}.`);
          if (byField.ends_at) to.setError(`End: ${byField.ends_at}.`);
          if (other.length || (!byField.starts_at && !byField.ends_at)) message.show(error.explanation, other);
          form.querySelector("[aria-invalid=true]")?.focus();
        } else {
          message.show(error.explanation);
        }
      } finally {
        button.disabled = false;
      }
    }

    const form = h(
      "form",
      { class: "window-form", novalidate: true, onsubmit: submit, "aria-describedby": summary.id },
      message.el,
      date.el,
      h("div", { class: "row" }, from.el, to.el),
      summary,
      button,
    );
    return {
      el: form,
      startOn(day) {
        date.input.value = day;
        describe();
        form.scrollIntoView({ behavior: "smooth", block: "start" });
        from.input.focus({ preventScroll: true });
      },
    };
  }

  function drawPatterns(patterns) {
    if (!patterns.length) {
      replace(patternList, h("p", { class: "muted" }, "No weekly patterns."));
      return;
    }
    replace(
      patternList,
      h(
        "ul",
        { class: "pattern-items" },
        patterns.map((p) => {
          const text = `Every ${WEEKDAYS[p.weekday]}, ${p.start_time}–${p.end_time}`;
          const dates =
            `From ${shortDay(p.valid_from)}` + (p.valid_until ? ` until ${shortDay(p.valid_until)}` : "");
          return h(
            "li",
            { "data-testid": "pattern" },
            h("p", { class: "pattern-text" }, h("strong", {}, text), h("br"), h("span", { class: "muted" }, dates)),
            h(
              "div",
              { class: "actions compact" },
              h(
                "button",
                { type: "button", class: "secondary", "aria-label": `Skip a date of: ${text}`, onclick: () => skipDate(p) },
                "Skip a date",
              ),
              h(
                "button",
                { type: "button", class: "secondary danger-text", "aria-label": `Stop: ${text}`, onclick: () => stopPattern(p, text) },
                "Stop",
              ),
            ),
          );
        }),
      ),
    );
  }

  async function stopPattern(pattern, text) {
    const go = await confirmDialog({
      title: "Stop this weekly pattern?",
      body: [`${text}.`, "Its future time is taken back; offers you haven’t answered go to someone else."],
      confirm: "Stop pattern",
      keep: "Keep it",
      danger: true,
    });
    if (!go) return;
    await takeBack(
      () => api(`/api/availability/patterns/${pattern.pattern_id}`, { method: "DELETE" }),
      "Weekly pattern stopped.",
    );
  }

  async function skipDate(pattern) {
    // The next eight dates the pattern falls on, to pick from.
    let first = today;
    while (weekdayOf(first) !== pattern.weekday) first = addDays(first, 1);
    const choices = Array.from({ length: 8 }, (_, i) => addDays(first, i * 7)).filter(
      (d) => d >= pattern.valid_from && (!pattern.valid_until || d <= pattern.valid_until),
    );
    const titleId = uid("skip");
    const onDate = await openDialog(
      (close) => {
        const select = h(
          "select",
          {},
          choices.map((d) => h("option", { value: d }, longDay(d))),
        );
        const which = field({ name: "on_date", label: "Date to skip", control: select });
        return h(
          "form",
          {
            class: "dialog-body",
            onsubmit: (event) => {
              event.preventDefault();
              close(select.value);
            },
          },
          h("h2", { id: titleId }, `Skip one ${WEEKDAYS[pattern.weekday]}`),
          h("p", {}, `Every ${WEEKDAYS[pattern.weekday]}, ${pattern.start_time}–${pattern.end_time}. The rest of the pattern carries on.`),
          which.el,
          h(
            "div",
            { class: "actions" },
            h("button", { type: "submit", class: "primary" }, "Skip this date"),
            h("button", { type: "button", class: "secondary", onclick: () => close(null) }, "Go back"),
          ),
        );
      },
      { labelledBy: titleId },
    );
    if (!onDate) return;
    await takeBack(
      () => api(`/api/availability/patterns/${pattern.pattern_id}/exceptions`, { method: "POST", body: { on_date: onDate } }),
      `${longDay(onDate)} skipped.`,
    );
  }

  function patternFormBuilder() {
    const weekday = h(
      "select",
      {},
      WEEKDAYS.map((name, i) => h("option", { value: String(i), selected: i === weekdayOf(today) }, name)),
    );
    const day = field({ name: "weekday", label: "Day", control: weekday });
    const from = field({ name: "start_time", label: "From", type: "time", value: "09:00" });
    const to = field({ name: "end_time", label: "To", type: "time", value: "17:00" });
    const validFrom = field({
      name: "valid_from",
      label: "Starting (optional)",
      type: "date",
      hint: "Leave empty to start this week.",
      attrs: { min: today },
    });
    const validUntil = field({
      name: "valid_until",
      label: "Until (optional)",
      type: "date",
      hint: "Leave empty to carry on until you stop it.",
      attrs: { min: today },
    });
    const message = formMessage();
    const button = h("button", { type: "submit", class: "primary wide" }, "Add weekly pattern");
    const fields = { weekday: day, start_time: from, end_time: to, valid_from: validFrom, valid_until: validUntil };

    async function submit(event) {
      event.preventDefault();
      for (const f of Object.values(fields)) f.setError(null);
      message.clear();
      let bad = false;
      if (!from.input.value) {
        from.setError("Enter a start time.");
        bad = true;
      }
      if (!to.input.value) {
        to.setError("Enter an end time.");
        bad = true;
      } else if (from.input.value && to.input.value <= from.input.value) {
        to.setError("A weekly pattern must end after it starts on the same day.");
        bad = true;
      }
      if (validFrom.input.value && validUntil.input.value && validUntil.input.value < validFrom.input.value) {
        validUntil.setError("The last date can’t be before the first.");
        bad = true;
      }
      if (bad) {
        form.querySelector("[aria-invalid=true]")?.focus();
        return;
      }
      const body = {
        weekday: Number(weekday.value),
        start_time: from.input.value,
        end_time: to.input.value,
      };
      if (validFrom.input.value) body.valid_from = validFrom.input.value;
      if (validUntil.input.value) body.valid_until = validUntil.input.value;
      button.disabled = true;
      try {
        const made = await api("/api/availability/patterns", { method: "POST", body });
        const count = made?.windows_offered ?? 0;
        ctx.toast(`Weekly pattern added: ${count} ${count === 1 ? "date" : "dates"} offered.`);
        form.closest("details").open = false;
        await load();
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        const { byField, other } = splitErrors(error, Object.keys(fields));
        for (const [name, text] of Object.entries(byField)) fields[name].setError(text);
        if (other.length || !Object.keys(byField).length) message.show(error.explanation, other);
        form.querySelector("[aria-invalid=true]")?.focus();
      } finally {
        button.disabled = false;
      }
    }

    const form = h(
      "form",
      { novalidate: true, onsubmit: submit },
      message.el,
      day.el,
      h("div", { class: "row" }, from.el, to.el),
      validFrom.el,
      validUntil.el,
      h("p", { class: "hint" }, "Times are UK time, so they stay the same when the clocks change."),
      button,
    );
    return { el: form };
  }

  load();
  const refresh = () => {
    if (document.visibilityState === "visible") load();
  };
  document.addEventListener("visibilitychange", refresh);
  return () => {
    alive = false;
    document.removeEventListener("visibilitychange", refresh);
  };
}
