// Luffy's admin: the date picker in Chinese and in the site's time zone, the periodic-task
// form's "schedule type" choice, and the enable switch on each periodic-task row.
(function () {
  "use strict";
  var body = document.body;

  // -- one time zone: "now" in the date picker is the site's wall clock, not the browser's ----
  var siteOffset = parseInt(body.dataset.siteUtcOffset, 10);
  if (window.moment && !isNaN(siteOffset)) {
    window.moment.now = function () {
      var browserOffset = -new Date().getTimezoneOffset();
      return Date.now() + (siteOffset - browserOffset) * 60000;
    };
  }

  // -- the date picker (bootstrap-daterangepicker, loaded by Flask-Admin's forms) in Chinese --
  var PICKER_LOCALE = {
    applyLabel: "确定",
    cancelLabel: "取消",
    fromLabel: "从",
    toLabel: "到",
    weekLabel: "周",
    customRangeLabel: "自定义",
    daysOfWeek: ["日", "一", "二", "三", "四", "五", "六"],
    monthNames: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"],
    firstDay: 1
  };
  if (window.jQuery) {
    // Flask-Admin's form.js announces itself with this event before it sets its pickers up.
    window.jQuery(document).on("adminFormReady", function () {
      var $ = window.jQuery;
      var original = $.fn.daterangepicker;
      if (!original || original.luffy) return;
      var wrapped = function (options, callback) {
        options = $.extend(true, { locale: PICKER_LOCALE }, options || {});
        if (options.separator === " to ") options.separator = " 至 ";
        return original.call(this, options, callback);
      };
      wrapped.luffy = true;
      $.fn.daterangepicker = wrapped;
    });
  }

  // -- periodic task form: one schedule type, only its fields shown --------------------------
  var kind = document.getElementById("schedule_kind");
  if (kind) {
    var showKind = function () {
      document.querySelectorAll("[data-schedule-kind]").forEach(function (field) {
        var group = field.closest(".form-group") || field;
        group.hidden = field.dataset.scheduleKind !== kind.value;
      });
    };
    kind.addEventListener("change", showKind);
    showKind();
  }

  // -- enable switches on the periodic task list: flip in place, say so in words -------------
  document.querySelectorAll("form.enable-toggle").forEach(function (form) {
    var button = form.querySelector("button");
    var status = form.querySelector(".toggle-status");
    var target = form.querySelector("input[name=enabled]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      fetch(form.action, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.json().then(function (answer) { return { ok: response.ok, answer: answer }; });
      }).then(function (result) {
        if (!result.ok) throw new Error(result.answer.msg || "保存失败");
        var enabled = result.answer.enabled;
        status.textContent = enabled ? "已启用" : "已停用";
        button.textContent = enabled ? "停用" : "启用";
        button.setAttribute("aria-label", button.getAttribute("aria-label").replace(/^\S+/, enabled ? "停用" : "启用"));
        target.value = enabled ? "0" : "1";
      }).catch(function (error) {
        status.textContent = "保存失败：" + error.message;
      }).then(function () { button.disabled = false; });
    });
  });
})();

// The admin home asks for the workers online after the page is shown (a ping takes a second).
(function () {
  "use strict";
  var figure = document.getElementById("summary-workers");
  if (!figure) return;
  fetch(figure.dataset.url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
    .then(function (response) { return response.json(); })
    .then(function (answer) {
      figure.textContent = answer.code === 100 ? String(answer.online) : "不可用";
      if (answer.code !== 100) figure.title = answer.msg;
    })
    .catch(function () { figure.textContent = "不可用"; });
})();

// Flask-Admin's list gives its row checkboxes and in-place boolean editors only a title or an
// icon: give them names a screen reader can say.
(function () {
  "use strict";
  var all = document.querySelector(".action-rowtoggle");
  if (all) all.setAttribute("aria-label", "全选本页");
  document.querySelectorAll("input.action-checkbox").forEach(function (box, index) {
    box.setAttribute("aria-label", "选择第 " + (index + 1) + " 行");
  });
  document.querySelectorAll('a[data-role^="x-editable"]').forEach(function (link) {
    if (link.textContent.trim()) return;
    var yes = link.dataset.value === "1" || link.dataset.value === "True" || link.querySelector(".fa-check, .fa-check-circle");
    link.setAttribute("aria-label", (yes ? "是" : "否") + "（点击修改）");
  });
})();

// What Flask-Admin's templates did in inline handlers (templates/admin/ overrides them):
// batch actions, delete confirmations, and filter links that must not navigate.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var action = event.target.closest("[data-model-action]");
    if (action) {
      event.preventDefault();
      if (window.modelActions) window.modelActions.execute(action.dataset.modelAction);
      return;
    }
    var confirmed = event.target.closest("[data-confirm]");
    if (confirmed && !window.confirm(confirmed.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    if (event.target.closest("a.filter")) event.preventDefault();
  });
})();
