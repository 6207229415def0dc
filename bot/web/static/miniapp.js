/* The Mini App: Telegram hands the page its signed initData (window.Telegram.WebApp.initData
   when Telegram's script is present, else the #tgWebAppData=… fragment of the URL); every
   request to the server carries it in X-Telegram-Init-Data, where it is checked. */
(function () {
  "use strict";
  function initData() {
    var tg = window.Telegram && window.Telegram.WebApp;
    if (tg && tg.initData) { return tg.initData; }
    var hash = window.location.hash.replace(/^#/, "");
    var params = new URLSearchParams(hash);
    return params.get("tgWebAppData") || "";
  }
  var data = initData();
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-Telegram-Init-Data"] = data;
  });
  document.addEventListener("htmx:beforeSwap", function (e) {
    var status = e.detail.xhr.status;
    if (status === 401 || status === 403) {
      var tpl = document.getElementById("unauth");
      e.detail.shouldSwap = true;
      e.detail.isError = false;
      if (status === 401 && tpl) { e.detail.serverResponse = tpl.innerHTML; }
    } else if (status >= 400) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
})();
