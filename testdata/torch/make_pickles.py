#!/usr/bin/python3
"""Write the PyTorch pickles shrink must recognize and refuse with advice.

    /usr/bin/python3 testdata/torch/make_pickles.py

A user hands shrink what torch.save wrote (a .pt state_dict) where a safetensors
file belongs; shrink must say so rather than report a header length. Writes, next
to this script, the state_dict of a 4-3 nn.Linear (torch.manual_seed(1)):
  state_dict.pt         torch.save's zip format (PyTorch >= 1.6, the default)
  state_dict_legacy.pt  torch.save(..., _use_new_zipfile_serialization=False): a bare pickle
"""
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(1)
sd = torch.nn.Linear(4, 3).state_dict()
torch.save(sd, os.path.join(HERE, "state_dict.pt"))
torch.save(sd, os.path.join(HERE, "state_dict_legacy.pt"), _use_new_zipfile_serialization=False)
