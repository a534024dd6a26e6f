// Integrations settings page: a small static page over the /v1 API (see common.js).
"use strict";

(function () {
  const { $, api, notice, requireSession } = window.crmsync;
  const MESSAGES = {
    access_denied: "You cancelled the Google sign-in. Nothing was connected.",
    state_unknown: "This sign-in was already completed or is unknown. Please start again with “Sign in with Google”.",
    state_expired: "The sign-in took longer than 10 minutes. Please start again.",
    state_mismatch: "The sign-in was started in another browser session. Please start again here.",
    state_missing: "Google's answer was incomplete. Please start again.",
    exchange_failed: "Google did not confirm the sign-in. Please try again.",
    provider_error: "Google reported an error during sign-in. Please try again.",
    unsupported_provider: "That provider is not supported.",
    connect_failed: "The account could not be connected. Please try again.",
  };
  const STATUS_TEXT = {
    connected: "Connected",
    needs_reauth: "Needs re-authorization: Google no longer accepts this connection. Reconnect it.",
    error: "Error: the connection is not working.",
  };
  const STATUS_ICON = { connected: "✔", needs_reauth: "⚠", error: "✖" };

  function readCallbackOutcome() {
    const params = new URLSearchParams(location.search);
    if (params.has("error")) {
      notice("error", MESSAGES[params.get("error")] || MESSAGES.connect_failed);
    } else if (params.has("connected")) {
      notice("ok", "Your Google account is connected.");
    }
    if (params.has("error") || params.has("connected")) {
      history.replaceState(null, "", location.pathname);
    }
  }

  function render(items) {
    const list = $("accounts");
    list.replaceChildren();
    $("loading").hidden = true;
    $("empty").hidden = items.length > 0;
    for (const item of items) {
      const row = $("account-row").content.firstElementChild.cloneNode(true);
      row.dataset.id = item.id;
      row.dataset.status = item.status;
      row.dataset.email = item.email;
      row.querySelector(".status-icon").textContent = STATUS_ICON[item.status] || "?";
      row.querySelector(".status-icon").setAttribute("title", item.status);
      row.querySelector(".email").textContent = item.email;
      row.querySelector(".status-text").textContent = STATUS_TEXT[item.status] || item.status;
      const reconnect = row.querySelector(".reconnect");
      reconnect.hidden = item.status === "connected";
      reconnect.addEventListener("click", () => signIn(item.email));
      const confirmBox = row.querySelector(".confirm");
      row.querySelector(".question").textContent =
        "Disconnect " + item.email + "? Its calendars stop syncing and its data mirrored here is removed.";
      row.querySelector(".connected").addEventListener("click", () => {
        confirmBox.hidden = false;
        row.querySelector(".confirm-disconnect").focus();
      });
      row.querySelector(".cancel").addEventListener("click", () => { confirmBox.hidden = true; });
      row.querySelector(".confirm-disconnect").addEventListener("click", async (event) => {
        event.target.disabled = true;
        try {
          await api("DELETE", "/v1/integrations/" + encodeURIComponent(item.id));
          notice("ok", item.email + " was disconnected.");
          await load();
        } catch (error) {
          event.target.disabled = false;
          notice("error", error.message);
        }
      });
      list.appendChild(row);
    }
  }

  async function load() {
    try {
      const data = await api("GET", "/v1/integrations");
      render(data.items);
    } catch (error) {
      $("loading").hidden = true;
      notice("error", error.message);
    }
  }

  async function signIn(loginHint) {
    const button = $("sign-in-google");
    button.disabled = true;
    try {
      const data = await api("POST", "/v1/integrations/google/authorize", loginHint ? { login_hint: loginHint } : {});
      location.assign(data.authorization_url);
    } catch (error) {
      button.disabled = false;
      notice("error", error.message);
    }
  }

  $("sign-in-google").addEventListener("click", () => signIn());
  readCallbackOutcome();
  if (!requireSession()) {
    $("loading").hidden = true;
    $("sign-in-google").disabled = true;
  } else {
    load();
  }
})();
