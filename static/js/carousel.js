// Banner carousel: fades between slides, with arrows, dots and a pause button. Slides out of
// view are inert (no Tab stop); rotation stops while paused, while the pointer or the focus is
// inside, and never starts for visitors who prefer reduced motion.
(function () {
  "use strict";
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)");

  document.querySelectorAll(".carousel").forEach(function (root) {
    var slides = root.querySelectorAll(".carousel-slide");
    var dots = root.querySelectorAll(".carousel-dot");
    var pause = root.querySelector(".carousel-pause");
    if (slides.length < 2) return;
    var current = 0;
    var interval = parseInt(root.dataset.interval, 10) || 4000;
    var timer = null;
    var paused = false;
    var hovered = false;
    var focused = false;

    function show(index) {
      current = (index + slides.length) % slides.length;
      slides.forEach(function (slide, i) {
        var active = i === current;
        slide.classList.toggle("active", active);
        slide.inert = !active;
        if (active) slide.removeAttribute("aria-hidden"); else slide.setAttribute("aria-hidden", "true");
      });
      dots.forEach(function (dot, i) {
        dot.classList.toggle("active", i === current);
        if (i === current) dot.setAttribute("aria-current", "true"); else dot.removeAttribute("aria-current");
      });
    }

    function stop() { if (timer) { clearInterval(timer); timer = null; } }

    function update() {
      stop();
      var still = paused || hovered || focused || (reduceMotion && reduceMotion.matches);
      if (!still) timer = setInterval(function () { show(current + 1); }, interval);
      root.dataset.rotating = still ? "false" : "true";
    }

    function setPaused(value) {
      paused = value;
      pause.setAttribute("aria-pressed", value ? "true" : "false");
      pause.textContent = value ? "继续轮播" : "暂停轮播";
      update();
    }

    root.querySelector(".carousel-prev").addEventListener("click", function () { show(current - 1); update(); });
    root.querySelector(".carousel-next").addEventListener("click", function () { show(current + 1); update(); });
    dots.forEach(function (dot) {
      dot.addEventListener("click", function () { show(parseInt(dot.dataset.index, 10)); update(); });
    });
    pause.addEventListener("click", function () { setPaused(!paused); });
    root.addEventListener("mouseenter", function () { hovered = true; update(); });
    root.addEventListener("mouseleave", function () { hovered = false; update(); });
    root.addEventListener("focusin", function () { focused = true; update(); });
    root.addEventListener("focusout", function (event) {
      focused = root.contains(event.relatedTarget);
      update();
    });
    if (reduceMotion) reduceMotion.addEventListener("change", update);
    if (reduceMotion && reduceMotion.matches) setPaused(true); else update();
  });
})();
