// Sign in with the one-time code from the invitation.

import { ApiError, api } from "../api.js";
import { field, h, replace } from "../dom.js";

export function render(main, ctx) {
  const code = field({
    name: "code",
    label: "Sign-in code",
    hint: "The code from your invitation text or e-mail, e.g. K7PQ2XMR4A.",
    attrs: {
      autocomplete: "one-time-code",
      autocapitalize: "characters",
      autocorrect: "off",
      spellcheck: "false",
      inputmode: "text",
      maxlength: "64",
      required: true,
    },
  });
  const button = h("button", { type: "submit", class: "primary wide" }, "Sign in");
  const notice = ctx.takeNotice();
  let timer = 0;

  function wait(seconds) {
    button.disabled = true;
    let left = seconds;
    const tick = () => {
      if (left <= 0) {
        button.disabled = false;
        button.textContent = "Sign in";
        return;
      }
      button.textContent = `Try again in ${left} s`;
      left -= 1;
      timer = setTimeout(tick, 1000);
    };
    tick();
  }

  async function submit(event) {
    event.preventDefault();
    const value = code.input.value.trim().toUpperCase().replace(/\s+/g, "");
    code.setError(null);
    if (!value) {
      code.setError("Enter the code from your invitation.");
      code.input.focus();
      return;
    }
    if (value.length < 4) {
      code.setError("That code is too short: check it against your invitation.");
      code.input.focus();
      return;
    }
    button.disabled = true;
    button.textContent = "Signing in…";
    try {
      await api("/api/auth/exchange", { method: "POST", body: { code: value } });
      const me = await api("/api/me");
      await ctx.signedIn(me);
    } catch (error) {
      button.disabled = false;
      button.textContent = "Sign in";
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 429) {
        const seconds = error.retryAfter ?? 60;
        code.setError(`Too many attempts. Wait ${seconds} seconds, then try again.`);
        wait(seconds);
      } else if (error.status === 401 || error.status === 422) {
        const forCode = error.errors.find((e) => e.field === "code");
        code.setError(
          error.status === 401
            ? error.explanation
            : `That doesn’t look like a sign-in code: ${forCode?.message ?? error.explanation}.`,
        );
      } else {
        code.setError(error.explanation);
      }
      code.input.focus();
      code.input.select();
    }
  }

  replace(
    main,
    h(
      "section",
      { class: "signin" },
      h("img", { class: "signin-logo", src: "icons/icon.svg", alt: "", width: "72", height: "72" }),
      h("h1", { tabindex: "-1" }, "Sign in"),
      h(
        "p",
        { class: "lede" },
        "Offer the time you’re free, answer offers and keep track of your bookings.",
      ),
      notice ? h("p", { class: "notice", role: "status" }, notice) : null,
      h("form", { novalidate: true, onsubmit: submit }, code.el, button),
      h(
        "p",
        { class: "hint" },
        "No code, or it has expired? Ask your bank coordinator to send a new invitation.",
      ),
    ),
  );
  return () => clearTimeout(timer);
}
