"""trapline as an Antenna processing service (https://github.com/RolnickLab/antenna).

Push mode: the `antenna:` block of the serve config puts Antenna's API (`/livez`, `/readyz`, `/info`, `/process`) on
a port of its own (door.py: a deployment of the app running its own server; routes.py), answered from the model
store (catalog.py: algorithms and pipelines by served version) and the ingress's own `detect` (process.py), in
Antenna's schema (protocol.py, answers.py). Pull mode: `trapline antenna work` (worker.py) polls Antenna's task API
and sends the images through the same door. With `antenna.record`, what the door answers is also journaled into
trapline's tables by the online door's recorder (records.py: the image URL as the source, once per detector version).
"""
