// Coffer console: live balances. On a page with a live region (#live-status), listen to
// the customer's event stream (/app/live, authenticated by the session cookie) and, on
// every event, tell htmx to refresh what listens for `coffer:changed` (the wallets and
// latest operations). Reconnects with backoff, and refreshes after a reconnect so
// nothing missed while away stays stale. Everything works without this script; it
// only saves a reload.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  if (!status || !("WebSocket" in window)) {
    return;
  }
  var delay = 1000;
  var refresh = function () {
    document.body.dispatchEvent(new CustomEvent("coffer:changed"));
  };
  var connect = function (again) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/app/live");
    socket.onopen = function () {
      delay = 1000;
      status.textContent = "Live: balances update as money moves.";
      status.dataset.state = "live";
      if (again) {
        refresh();
      }
    };
    socket.onmessage = refresh;
    socket.onclose = function () {
      status.textContent = "Reconnecting…";
      status.dataset.state = "away";
      setTimeout(function () { connect(true); }, delay);
      delay = Math.min(delay * 2, 30000);
    };
  };
  connect(false);
})();
