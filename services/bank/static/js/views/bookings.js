// Bookings: upcoming and past, with an honest way to give one up.

import { api } from "../api.js";
import { h, replace, uid } from "../dom.js";
import { distance, pay, sector, words } from "../labels.js";
import { duration, londonDate, londonTime, range, shortDay } from "../time.js";
import { cancelBooking } from "./cancel.js";

const STATUS = {
  accepted: ["Accepted – awaiting confirmation", "pending"],
  booked: ["Booked", "booked"],
  cancelled: ["Cancelled by the organisation", "cancelled"],
  cancelled_by_me: ["You cancelled", "cancelled"],
};

// A worked session's way to pay (GET /api/timesheets).
const PAY = {
  worked: ["Hours not confirmed yet", "pending"],
  submitted: ["Hours sent – waiting for the practice", "pending"],
  approved: ["Hours approved", "booked"],
  queried: ["The practice queried your hours", "cancelled"],
};

export function render(main, ctx, arg) {
  const when = arg === "past" ? "past" : "upcoming";
  let alive = true;
  let poll = 0;
  const list = h("div", { class: "booking-list", "aria-busy": "true" }, h("p", { class: "loading" }, "Loading bookings…"));
  const saved = h("p", { class: "notice", hidden: true, "data-testid": "saved-note" });

  const tab = (name, label) =>
    h(
      "a",
      {
        href: `#/bookings/${name}`,
        class: "segment",
        "aria-current": when === name ? "page" : null,
      },
      label,
    );

  replace(
    main,
    h("h1", { tabindex: "-1" }, "Bookings"),
    h("nav", { class: "segments", "aria-label": "Which bookings" }, tab("upcoming", "Upcoming"), tab("past", "Past")),
    saved,
    list,
  );

  let sheets = new Map();

  async function load() {
    clearTimeout(poll);
    let result;
    try {
      if (when === "past") {
        try {
          sheets = new Map((await api("/api/timesheets")).map((t) => [t.offer_id, t]));
        } catch {
          sheets = new Map(); // offline: bookings still show, without their pay state
        }
      }
      result = await api(`/api/bookings?when=${when}`, { meta: true });
    } catch (error) {
      if (!alive) return;
      list.removeAttribute("aria-busy");
      replace(list, h("p", { class: "problem" }, error.explanation ?? String(error)));
      return;
    }
    if (!alive) return;
    const rows = result.data ?? [];
    saved.hidden = !result.savedAt;
    if (result.savedAt) {
      saved.textContent = `Offline: showing your bookings as this phone last saw them (${shortStamp(result.savedAt)}).`;
    }
    list.removeAttribute("aria-busy");
    if (!rows.length) {
      replace(
        list,
        h(
          "div",
          { class: "empty panel" },
          h("h2", {}, when === "upcoming" ? "No upcoming bookings" : "No past bookings"),
          when === "upcoming"
            ? h("p", {}, "Sessions you accept appear here. ", h("a", { href: "#/offers" }, "See offers"), ".")
            : h("p", {}, "Sessions you’ve worked or that were cancelled appear here."),
        ),
      );
    } else {
      replace(list, rows.map((row) => card(row, Boolean(result.savedAt))));
    }
    // Matching confirms an acceptance within moments: look again until it has.
    if (!result.savedAt && rows.some((r) => r.status === "accepted")) {
      poll = setTimeout(load, 3000);
    }
  }

  function card(booking, offline) {
    const [label, cls] = STATUS[booking.status] ?? [words(booking.status), "pending"];
    const titleId = uid("booking");
    const starts = new Date(booking.starts_at);
    const ends = new Date(booking.ends_at);
    const canCancel = when === "upcoming" && !offline && starts.getTime() > Date.now();
    return h(
      "article",
      { class: "card booking", "aria-labelledby": titleId, "data-testid": "booking-card", "data-offer-id": booking.offer_id },
      h(
        "div",
        { class: "card-head" },
        h("h2", { id: titleId, class: "card-title" }, booking.site_name),
        h("span", { class: `badge ${cls}`, "data-testid": "booking-status" }, label),
      ),
      h("p", { class: "card-sub" }, `${sector(booking.sector)} · ${words(booking.role)} · ${booking.organisation}`),
      h(
        "dl",
        { class: "facts" },
        h("div", { class: "fact wide" }, h("dt", {}, "When (UK time)"), h("dd", {}, range(booking.starts_at, booking.ends_at), h("span", { class: "muted" }, ` (${duration(ends - starts)})`))),
        h("div", { class: "fact" }, h("dt", {}, "Pay"), h("dd", {}, pay(booking.rate_pence_per_hour))),
        h("div", { class: "fact" }, h("dt", {}, "Distance"), h("dd", {}, distance(booking.distance_km))),
      ),
      booking.note ? h("p", { class: "note" }, booking.note) : null,
      sheets.has(booking.offer_id) && booking.status === "booked" ? payState(sheets.get(booking.offer_id), offline) : null,
      canCancel
        ? h(
            "div",
            { class: "actions" },
            h(
              "button",
              {
                type: "button",
                class: "secondary danger-text",
                "aria-label": `Cancel booking at ${booking.site_name}, ${range(booking.starts_at, booking.ends_at)}`,
                onclick: () => cancel(booking),
              },
              "Cancel booking…",
            ),
          )
        : null,
    );
  }

  function payState(sheet, offline) {
    const [label, cls] = PAY[sheet.pay_state] ?? [words(sheet.pay_state), "pending"];
    let why = null;
    if (sheet.pay_state === "approved") {
      why = sheet.approved_automatically ? "Approved automatically: the practice did not answer in time." : `Approved by ${sheet.approved_by ?? "the practice"}.`;
    } else if (sheet.pay_state === "queried") {
      why = `Why: ${sheet.query_reason}`;
    }
    const canConfirm = !offline && sheet.pay_state === "worked";
    return h(
      "div",
      { class: "pay", "data-testid": "pay-state" },
      h("span", { class: `badge ${cls}` }, label),
      why ? h("p", { class: "note" }, why) : null,
      canConfirm
        ? h(
            "button",
            { type: "button", class: "secondary", onclick: () => confirmHours(sheet) },
            `Confirm hours as booked: ${range(sheet.started_at, sheet.ended_at)}`,
          )
        : null,
    );
  }

  async function confirmHours(sheet) {
    try {
      await api(`/api/bookings/${sheet.offer_id}/timesheet`, { method: "POST", body: {} });
      ctx.toast("Hours sent to the practice.");
    } catch (error) {
      ctx.toast(error.explanation ?? String(error));
    }
    await load();
  }

  async function cancel(booking) {
    const result = await cancelBooking(booking, { lateSoFar: ctx.me?.late_cancellations ?? null });
    if (!result) return;
    ctx.toast(result.late ? "Booking cancelled. It counts as a late cancellation." : "Booking cancelled. The practice has been told.");
    try {
      ctx.setMe(await api("/api/me"));
    } catch {
      // Only the late-cancellation count could be out of date.
    }
    await load();
  }

  load();
  const refresh = () => {
    if (document.visibilityState === "visible") load();
  };
  document.addEventListener("visibilitychange", refresh);
  window.addEventListener("online", load);
  return () => {
    alive = false;
    clearTimeout(poll);
    document.removeEventListener("visibilitychange", refresh);
    window.removeEventListener("online", load);
  };
}

function shortStamp(date) {
  const today = londonDate(new Date());
  const day = londonDate(date);
  return day === today ? `today at ${londonTime(date)}` : `${shortDay(day)} at ${londonTime(date)}`;
}
