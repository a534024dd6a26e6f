"""Work messages on the sync queue (SQS FIFO): their schema and the publisher."""
