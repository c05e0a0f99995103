// A worker whose one request shows that the tests see requests made from workers.
fetch('/index.html?worker-control=1').then(() => postMessage('done'));
