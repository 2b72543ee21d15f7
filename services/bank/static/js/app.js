// The clinicians' app: sign-in, hash routes, the tab bar, live offers and the offline copy.

import { api, whenSignedOut } from "./api.js";
import { announce, h, replace, toast } from "./dom.js";
import { LiveOffers } from "./live.js";
import { range } from "./time.js";
import * as bookings from "./views/bookings.js";
import * as offers from "./views/offers.js";
import * as profile from "./views/profile.js";
import * as signin from "./views/signin.js";
import * as week from "./views/week.js";

const VIEWS = { signin, week, offers, bookings, profile };
const TITLES = {
  signin: "Sign in",
  week: "My week",
  offers: "Offers",
  bookings: "Bookings",
  profile: "Profile",
};
export const API_CACHE = "fs-api";

const state = { me: null, live: new LiveOffers(), notice: "" };
let cleanup = null;
let rendered = false;

const main = document.getElementById("main");
const tabbar = document.querySelector(".tabbar");

function current() {
  const match = location.hash.match(/^#\/([a-z]+)(?:\/([\w-]*))?/);
  return match ? { name: match[1], arg: match[2] ?? "" } : { name: "", arg: "" };
}

/** Go to a screen ("week", "bookings/past"…). */
function go(path, { replaceHistory = false } = {}) {
  const hash = `#/${path}`;
  if (location.hash === hash) {
    render();
  } else if (replaceHistory) {
    history.replaceState(null, "", hash);
    render();
  } else {
    location.hash = hash;
  }
}

function render() {
  const { name, arg } = current();
  if (!state.me && name !== "signin") {
    go("signin", { replaceHistory: true });
    return;
  }
  if (state.me && (name === "signin" || !VIEWS[name])) {
    go("offers", { replaceHistory: true });
    return;
  }
  if (cleanup) cleanup();
  cleanup = null;
  document.getElementById("toast").hidden = true; // a message belongs to the screen it was for
  main.replaceChildren();
  tabbar.hidden = !state.me;
  document.body.classList.toggle("signed-in", Boolean(state.me));
  for (const link of tabbar.querySelectorAll("a")) {
    if (link.dataset.tab === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${TITLES[name]} – Fairshare bank`;
  window.scrollTo(0, 0);
  cleanup = VIEWS[name].render(main, context, arg) || null;
  // After the first screen, move focus to the new screen's heading (read out on change).
  if (rendered) main.querySelector("h1")?.focus({ preventScroll: true });
  rendered = true;
}

function showWho() {
  const who = document.getElementById("who");
  who.textContent = state.me ? state.me.display_name : "";
}

function updateBadge() {
  const count = state.live.offers.length;
  const badge = document.getElementById("offer-count");
  const link = tabbar.querySelector('[data-tab="offers"]');
  badge.textContent = String(count);
  badge.hidden = count === 0;
  if (count) link.setAttribute("aria-label", `Offers, ${count} waiting`);
  else link.removeAttribute("aria-label");
}

state.live.addEventListener("change", (event) => {
  updateBadge();
  for (const offer of event.detail.added) {
    const text = `New offer: ${offer.site_name}, ${range(offer.starts_at, offer.ends_at)}`;
    if (current().name === "offers") announce(text);
    else toast(text);
  }
});

async function clearSavedCopies() {
  try {
    if ("caches" in window) await caches.delete(API_CACHE);
  } catch {
    // Nothing saved, or storage unavailable: nothing to clear.
  }
}

const context = {
  get me() {
    return state.me;
  },
  live: state.live,
  go,
  toast,
  setMe(me) {
    state.me = me;
    showWho();
  },
  async signedIn(me) {
    await clearSavedCopies(); // nothing of a previous person's stays on this phone
    state.me = me;
    showWho();
    state.live.start();
    go("week");
  },
  async signOut() {
    try {
      await api("/api/auth/signout", { method: "POST" });
    } catch {
      // Signed out here all the same; the session also ends by itself.
    }
    await endSession("You have signed out.");
  },
  takeNotice() {
    const notice = state.notice;
    state.notice = "";
    return notice;
  },
};

async function endSession(notice) {
  state.live.stop();
  state.me = null;
  state.notice = notice;
  showWho();
  await clearSavedCopies();
  go("signin", { replaceHistory: true });
}

function watchConnection() {
  const banner = document.getElementById("offline-banner");
  const update = () => {
    banner.hidden = navigator.onLine;
    document.body.classList.toggle("offline", !navigator.onLine);
  };
  window.addEventListener("online", update);
  window.addEventListener("offline", update);
  update();
}

function registerWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("sw.js").catch(() => {
    // Works without it, only not offline.
  });
}

function showStartupProblem(error) {
  replace(
    main,
    h(
      "section",
      { class: "panel" },
      h("h1", { tabindex: "-1" }, "Can’t reach the bank"),
      h("p", {}, error.explanation ?? "Something went wrong."),
      h("button", { type: "button", class: "primary", onclick: () => location.reload() }, "Try again"),
    ),
  );
}

async function boot() {
  registerWorker();
  watchConnection();
  whenSignedOut(() => {
    if (state.me) endSession("Your session has ended. Please sign in again.");
  });
  try {
    state.me = await api("/api/me");
  } catch (error) {
    if (error.status !== 401) {
      showStartupProblem(error);
      return;
    }
  }
  showWho();
  if (state.me) state.live.start();
  window.addEventListener("hashchange", render);
  render();
}

boot();
