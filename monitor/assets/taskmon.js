// taskmon: live dashboard (Server-Sent Events + uPlot) and small page helpers.
(function () {
  'use strict';
  var WINDOW = 300; // seconds shown by the graphs

  function $(sel) { return document.querySelector(sel); }
  function text(el, v) { if (el) el.textContent = String(v); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { if (k === 'text') e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { e.appendChild(c); });
    return e;
  }

  function chartWidth(node) { return Math.max(300, (node.clientWidth || node.parentNode.clientWidth || 600) - 4); }

  var palette = ['#3451b2', '#00897b', '#8e24aa', '#f4511e', '#6d4c41', '#546e7a', '#c0ca33', '#d81b60'];

  function dashboard() {
    var tasksNode = $('#chart-tasks'), queuesNode = $('#chart-queues');
    if (!tasksNode || typeof uPlot === 'undefined') return;
    var state = { updates: 0, t: [], s: [], f: [], r: [], qnames: [], q: {} };
    var tasks = new uPlot({
      width: chartWidth(tasksNode), height: 240,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      series: [{}, { label: 'succeeded', stroke: '#2e7d32', width: 2 }, { label: 'failed', stroke: '#c62828', width: 2 }, { label: 'retried', stroke: '#ef6c00', width: 2 }],
      axes: [{}, { label: 'tasks/s' }]
    }, [[], [], [], []], tasksNode);
    var queues = null;
    window.taskmon = { state: state, charts: { tasks: tasks, queues: null } };

    function trim(a) { while (a.length > WINDOW) a.shift(); }

    function drawQueues() {
      var names = state.qnames;
      var data = [state.t.slice()];
      names.forEach(function (n) {
        var l = state.q[n] || [];
        var pad = state.t.length - l.length;
        data.push(new Array(Math.max(pad, 0)).fill(null).concat(l.slice(Math.max(-pad, 0))));
      });
      if (!queues || queues.series.length !== names.length + 1) {
        if (queues) queues.destroy();
        var series = [{}];
        names.forEach(function (n, i) { series.push({ label: n, stroke: palette[i % palette.length], width: 2 }); });
        queues = new uPlot({ width: chartWidth(queuesNode), height: 240,
          scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
          series: series, axes: [{}, { label: 'ready messages' }] }, data, queuesNode);
        window.taskmon.charts.queues = queues;
      } else {
        queues.setData(data);
      }
      text($('#queues-note'), names.length ? '' : 'No queue polled yet (the transport may not report depths).');
    }

    function draw() {
      tasks.setData([state.t.slice(), state.s.slice(), state.f.slice(), state.r.slice()]);
      drawQueues();
    }

    function workersTable(workers) {
      var body = $('#workers-body');
      if (!body) return;
      var rows = [];
      workers.forEach(function (w) {
        var c = w.task_counts || {};
        var badge = el('span', { 'class': 'badge ' + w.status, 'data-status': '', text: w.status });
        var link = el('a', { href: '/tasks?workername=' + encodeURIComponent(w.hostname), text: w.hostname });
        var load = (w.loadavg || []).map(function (x) { return x.toFixed(2); }).join(' ');
        rows.push(el('tr', { 'data-worker': w.hostname }, [
          el('td', null, [link]), el('td', null, [badge]),
          el('td', { 'class': 'n', text: w.active }), el('td', { 'class': 'n', text: w.processed }),
          el('td', { 'class': 'n', text: c.succeeded || 0 }), el('td', { 'class': 'n', text: c.failed || 0 }),
          el('td', { 'class': 'n', text: c.retried || 0 }), el('td', { text: load }),
          el('td', { text: w.ago || '' }), el('td', { text: [w.sw_ident, w.sw_ver, w.sw_sys].join(' ') })
        ]));
      });
      if (!rows.length) rows.push(el('tr', { 'class': 'empty' }, [el('td', { colspan: '10', text: 'No worker seen yet.' })]));
      body.replaceChildren.apply(body, rows);
    }

    function update(snap) {
      var p = snap.point, last = state.t.length ? state.t[state.t.length - 1] : 0;
      if (p.t > last) {
        state.t.push(p.t); state.s.push(p.succeeded); state.f.push(p.failed); state.r.push(p.retried);
        (snap.queues ? Object.keys(snap.queues) : []).forEach(function (n) {
          if (state.qnames.indexOf(n) < 0) { state.qnames.push(n); state.qnames.sort(); }
        });
        state.qnames.forEach(function (n) {
          var l = state.q[n] || (state.q[n] = []);
          var pad = state.t.length - 1 - l.length;
          for (var i = 0; i < pad; i++) l.push(null);
          l.push(snap.queues && n in snap.queues ? snap.queues[n] : null);
          trim(l);
        });
        [state.t, state.s, state.f, state.r].forEach(trim);
        draw();
      }
      var tot = snap.totals || {};
      text($('#total-online'), tot.workers_online); text($('#total-workers'), tot.workers);
      text($('#total-succeeded'), tot.succeeded); text($('#total-failed'), tot.failed);
      text($('#total-retried'), tot.retried); text($('#total-tasks'), tot.tasks); text($('#total-events'), tot.events);
      workersTable(snap.workers || []);
      state.updates++;
      document.body.setAttribute('data-updates', String(state.updates));
    }

    function connect() {
      var live = $('#live');
      var es = new EventSource('/api/events/stream');
      es.onopen = function () { if (live) live.classList.add('on'); };
      es.onerror = function () { if (live) live.classList.remove('on'); };
      es.onmessage = function (e) { try { update(JSON.parse(e.data)); } catch (err) { console.error(err); } };
    }

    fetch('/api/series?n=' + WINDOW, { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (s) {
      state.t = s.t; state.s = s.succeeded; state.f = s.failed; state.r = s.retried;
      state.qnames = Object.keys(s.queues || {}).sort();
      state.qnames.forEach(function (n) { state.q[n] = s.queues[n]; });
      draw();
    }).catch(function (e) { console.error(e); }).then(connect);

    window.addEventListener('resize', function () {
      tasks.setSize({ width: chartWidth(tasksNode), height: 240 });
      if (queues) queues.setSize({ width: chartWidth(queuesNode), height: 240 });
    });
  }

  function revokeButtons() {
    document.querySelectorAll('button[data-revoke]').forEach(function (b) {
      b.addEventListener('click', function () {
        if (!window.confirm('Revoke task ' + b.getAttribute('data-revoke') + '?')) return;
        fetch('/api/task/revoke/' + encodeURIComponent(b.getAttribute('data-revoke')), { method: 'POST', credentials: 'same-origin' })
          .then(function () { window.location.reload(); });
      });
    });
  }

  function autoSubmitFilters() {
    var f = $('#task-filters');
    if (!f) return;
    f.querySelectorAll('select').forEach(function (s) { s.addEventListener('change', function () { f.submit(); }); });
  }


  // Progress (Celery's update_state, polled by the monitor from the result
  // backend): a bar on the task page and in the task list, refreshed every
  // PROGRESS_MS from /api/task/info/<id> and /api/progress without a reload.
  var PROGRESS_MS = 1000;
  function progressBar(p, small) {
    var wrap = document.createElement('span');
    wrap.className = small ? 'progress small' : 'progress';
    var bar = document.createElement('progress');
    bar.max = 100;
    if (p.total !== undefined) bar.value = p.percent;
    else bar.removeAttribute('value');
    wrap.appendChild(bar);
    var label = document.createElement('span');
    label.className = 'progress-label';
    var t = p.state;
    if (p.total !== undefined) t = p.current + '/' + p.total + ' (' + Math.round(p.percent) + '%)';
    if (!small && p.note) t += ' ' + p.note;
    if (!small && p.total === undefined && p.meta !== null && p.meta !== undefined) t += ' ' + JSON.stringify(p.meta);
    label.textContent = t;
    wrap.appendChild(label);
    wrap.setAttribute('data-state', p.state);
    if (p.total !== undefined) { wrap.setAttribute('data-current', String(p.current)); wrap.setAttribute('data-total', String(p.total)); }
    return wrap;
  }

  function taskProgress() {
    var u = $('#task-uuid'), fields = $('#task-fields');
    if (!u || !fields) return;
    var box = document.createElement('div');
    box.id = 'task-progress';
    fields.parentNode.insertBefore(box, fields);
    var id = u.textContent.trim(), stateNode = $('#task-state');
    function tick() {
      fetch('/api/task/info/' + encodeURIComponent(id), { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (t) {
        box.textContent = '';
        if (t.progress) box.appendChild(progressBar(t.progress, false));
        var st = t.progress ? t.progress.state : t.state;
        if (stateNode && stateNode.textContent !== st) {
          stateNode.textContent = st;
          stateNode.className = 'badge st-' + st.toLowerCase();
        }
        box.setAttribute('data-final', (t.state === 'SUCCESS' || t.state === 'FAILURE' || t.state === 'REVOKED') ? 'true' : 'false');
        if (box.getAttribute('data-final') !== 'true') setTimeout(tick, PROGRESS_MS);
      }).catch(function () { setTimeout(tick, PROGRESS_MS * 5); });
    }
    tick();
  }

  function listProgress() {
    var rows = document.querySelectorAll('tr[data-uuid]');
    if (!rows.length || !$('#task-filters')) return;
    function tick() {
      fetch('/api/progress', { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (all) {
        rows.forEach(function (row) {
          var cell = row.querySelector('td.task-state') || row.children[2];
          var old = cell.querySelector('.progress');
          if (old) old.remove();
          var p = all[row.getAttribute('data-uuid')];
          if (p) cell.appendChild(progressBar(p, true));
        });
        document.body.setAttribute('data-progress-polls', String(Number(document.body.getAttribute('data-progress-polls') || 0) + 1));
        setTimeout(tick, PROGRESS_MS);
      }).catch(function () { setTimeout(tick, PROGRESS_MS * 5); });
    }
    tick();
  }

  document.addEventListener('DOMContentLoaded', function () { dashboard(); revokeButtons(); autoSubmitFilters(); taskProgress(); listProgress(); });
})();
