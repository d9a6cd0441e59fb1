// Signs requests with the npm aws4 package (an implementation of SigV4 not written here)
// and sends them to the AWS emulator, printing one JSON line per case:
//   {"case": "...", "status": 200, "body": "..."}
// Usage: node sign-and-send.js http://127.0.0.1:PORT
// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (test values).
'use strict';
const http = require('http');
const aws4 = require('aws4');

const endpoint = new URL(process.argv[2]);
const credentials = {
  accessKeyId: process.env.AWS_ACCESS_KEY_ID,
  secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
};

function signed(service, path, headers, body, secret) {
  const request = {
    host: endpoint.host, // with the port: the emulator checks the Host header as received
    path,
    method: 'POST',
    service,
    region: 'us-east-1',
    headers: Object.assign({ Host: endpoint.host }, headers),
    body,
  };
  return aws4.sign(request, secret ? Object.assign({}, credentials, { secretAccessKey: secret })
                                   : credentials);
}

function send(name, request, bodyOverride) {
  return new Promise((resolve) => {
    const body = bodyOverride !== undefined ? bodyOverride : request.body;
    const headers = Object.assign({}, request.headers, { 'Content-Length': Buffer.byteLength(body) });
    const outgoing = http.request(
      { hostname: endpoint.hostname, port: endpoint.port, path: request.path, method: 'POST', headers },
      (response) => {
        let text = '';
        response.on('data', (chunk) => { text += chunk; });
        response.on('end', () => {
          console.log(JSON.stringify({ case: name, status: response.statusCode, body: text }));
          resolve();
        });
      });
    outgoing.on('error', (error) => {
      console.log(JSON.stringify({ case: name, status: 0, body: String(error) }));
      resolve();
    });
    outgoing.end(body);
  });
}

const ecsHeaders = {
  'Content-Type': 'application/x-amz-json-1.1',
  'X-Amz-Target': 'AmazonEC2ContainerServiceV20141113.DescribeServices',
};
const ecsBody = JSON.stringify({ cluster: 'prod', services: ['search'] });

(async () => {
  await send('ecs_json', signed('ecs', '/', ecsHeaders, ecsBody));
  await send('ecs_json_unsorted_query', signed('ecs', '/?zeta=2&alpha=1', ecsHeaders, ecsBody));
  await send('elbv2_query', signed('elasticloadbalancing', '/',
    { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' },
    'Action=DescribeListeners&Version=2015-12-01&ListenerArns.member.1=' +
      encodeURIComponent(process.argv[3] || '')));
  await send('ecs_body_altered', signed('ecs', '/', ecsHeaders, ecsBody),
    JSON.stringify({ cluster: 'prod', services: ['checkout'] }));
  await send('ecs_wrong_secret', signed('ecs', '/', ecsHeaders, ecsBody, 'not-the-secret-EXAMPLE'));
  await send('ecs_signed_for_wafv2', signed('wafv2', '/', ecsHeaders, ecsBody));
})();
